// libFuzzer target: virtio-net's two queues over chains the fuzzer shapes in guest memory
// (see fuzzedQueue; both queues share that layout). Byte 5 chooses MRG_RXBUF, whether the
// backend carries headers, and the lengths of the frames it offers for receive, which
// the input's last bytes give. Whatever the rings say, a frame sent stays within the
// largest frame, and a receive delivers or drops every frame it took.
final class FuzzNetwork: NetworkBackend, @unchecked Sendable {
    let carriesHeader: Bool
    var descriptor: Int32 { -1 }
    var lengths: [Int]
    var taken = 0

    init(carriesHeader: Bool, lengths: [Int]) {
        self.carriesHeader = carriesHeader
        self.lengths = lengths
    }

    func readyToSend() -> Bool { true }

    func send(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        let total = parts.reduce(0) { $0 + $1.count }
        precondition(total <= VirtioNet.maximumFrameLength + (carriesHeader ? VirtioNet.headerLength : 0), "an oversized frame was sent")
        return true
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard !lengths.isEmpty else { return 0 }
        let length = min(lengths.removeFirst(), buffer.count)
        buffer.initializeMemory(as: UInt8.self, repeating: 0x5a)
        taken += 1
        return length
    }

    func acceptOffloads(_ features: UInt64) {}
}

final class QuietInterrupt: VirtioInterrupt {
    func usedBuffers() {}
    func configurationChanged() {}
    func deviceNeedsReset(_ error: VirtqueueError) {}
}

let memory = try! GuestMemory(size: 64 << 10)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let receiveQueue = fuzzedQueue(data, size, in: memory), let transmitQueue = fuzzedQueue(data, size, in: memory) else { return 0 }
    let choice = data[5]
    let tail = UnsafeBufferPointer(start: data + max(6, size - 8), count: min(8, size - 6))
    let lengths = tail.map { Int($0) * 300 + 14 }
    let backend = FuzzNetwork(carriesHeader: choice & 2 != 0, lengths: lengths)
    let interrupt = QuietInterrupt()
    let device = VirtioNet(backend: backend, mac: [2, 0, 0, 0, 0, 1]) {}
    device.activate(queues: [receiveQueue, transmitQueue],
                    features: choice & 1 != 0 ? VirtioNet.Feature.mergeableReceiveBuffers : 0, interrupt: interrupt)
    device.queueNotified(1)
    device.pumpTransmit()
    for _ in 0..<Int(choice >> 2 & 3 + 1) {
        _ = device.pumpReceive()
        device.queueNotified(0)
    }
    let statistics = device.statistics
    precondition(statistics.received + statistics.receiveDropped <= backend.taken, "a frame was delivered twice")
    precondition(backend.taken - statistics.received - statistics.receiveDropped <= 1, "more than one frame waits in the device")
    return 0
}
