// libFuzzer target: virtio-net's two queues over chains the fuzzer shapes in guest memory
// (see fuzzedQueue; both queues share that layout). Byte 5 chooses MRG_RXBUF (bit 0),
// whether the backend carries headers (bit 1), how many receive rounds run (bits 2-3),
// when the backend comes (bits 4-5: at build, attached before activation, after the
// transmit pump, or after the first receive round) and whether a backend of the other
// header kind is offered first (bit 6); the input's last bytes give the lengths of the
// frames the backend offers for receive. Whatever the rings say, a frame sent stays
// within the largest frame, nothing reaches the backend before it is attached, a
// receive delivers or drops every frame it took, the device is idle exactly when no
// frame waits in it, and every attach to the active device is announced once.
final class FuzzNetwork: NetworkBackend, @unchecked Sendable {
    let carriesHeader: Bool
    var descriptor: Int32 { -1 }
    var lengths: [Int]
    var taken = 0
    var sent = 0

    init(carriesHeader: Bool, lengths: [Int]) {
        self.carriesHeader = carriesHeader
        self.lengths = lengths
    }

    func readyToSend() -> Bool { true }

    func send(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        let total = parts.reduce(0) { $0 + $1.count }
        precondition(total <= VirtioNet.maximumFrameLength + (carriesHeader ? VirtioNet.headerLength : 0), "an oversized frame was sent")
        sent += 1
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

final class CountingInterrupt: VirtioInterrupt, @unchecked Sendable {
    var configurationChanges = 0
    func usedBuffers() {}
    func configurationChanged() { configurationChanges += 1 }
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
    let interrupt = CountingInterrupt()
    let attachment = Int(choice >> 4 & 3)
    let device = attachment == 0 ? VirtioNet(backend: backend, mac: [2, 0, 0, 0, 0, 1]) {}
        : VirtioNet(carriesHeader: backend.carriesHeader, mac: [2, 0, 0, 0, 0, 1]) {}
    func attach() {
        if choice & 0x40 != 0 {
            let other = FuzzNetwork(carriesHeader: !backend.carriesHeader, lengths: [])
            precondition((try? device.attach(other)) == nil, "a backend of the other header kind was taken")
        }
        precondition((try? device.attach(backend)) != nil, "a device without a backend refused one")
        precondition((try? device.attach(backend)) == nil, "a second backend was taken")
    }
    if attachment == 1 { attach() }
    precondition(interrupt.configurationChanges == 0, "a configuration change before activation")
    device.activate(queues: [receiveQueue, transmitQueue],
                    features: choice & 1 != 0 ? VirtioNet.Feature.mergeableReceiveBuffers : 0, interrupt: interrupt)
    device.queueNotified(1)
    device.pumpTransmit()
    if attachment == 2 { attach() }
    for round in 0..<Int(choice >> 2 & 3 + 1) {
        _ = device.pumpReceive()
        if attachment == 3 && round == 0 { attach() }
        device.queueNotified(0)
    }
    precondition(interrupt.configurationChanges == (attachment == 0 ? 0 : 1), "an attach was not announced once")
    precondition(attachment < 2 || backend.sent == 0, "a frame reached the backend before it was attached")
    let statistics = device.statistics
    precondition(statistics.received + statistics.receiveDropped <= backend.taken, "a frame was delivered twice")
    let waiting = backend.taken - statistics.received - statistics.receiveDropped
    precondition(waiting <= 1, "more than one frame waits in the device")
    precondition(device.isIdle == (waiting == 0), "idle while a frame waits, or busy with none")
    return 0
}
