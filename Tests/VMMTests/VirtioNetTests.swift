@testable import Devices
import Glibc
@testable import Memory
import Synchronization
import Testing

/// A backend in memory: frames the device sent, and frames waiting to be received.
final class MemoryNetwork: NetworkBackend, @unchecked Sendable {
    let carriesHeader: Bool
    var descriptor: Int32 { -1 }
    var sent: [[UInt8]] = []
    var incoming: [[UInt8]] = []
    var gone = false
    /// The peer takes nothing more for now.
    var full = false
    var offloads: UInt64?

    init(carriesHeader: Bool = false) {
        self.carriesHeader = carriesHeader
    }

    func readyToSend() -> Bool { !full }

    func send(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        sent.append(parts.flatMap { Array($0) })
        return !gone
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard !incoming.isEmpty else { return gone ? nil : 0 }
        let frame = incoming.removeFirst()
        guard frame.count <= buffer.count else { return 0 }
        buffer.copyBytes(from: frame)
        return frame.count
    }

    func acceptOffloads(_ features: UInt64) { offloads = features }
}

/// virtio-net against simulated drivers for both queues: headers stripped and added,
/// frames spread over mergeable buffers, and what a guest that posts too little or
/// breaks the rules gets.
@Suite struct VirtioNetTests {
    var receive: SimulatedDriver
    var transmit: SimulatedDriver
    let backend: MemoryNetwork
    let interrupt = RecordingInterrupt()
    let device: VirtioNet
    let receiveQueue: Virtqueue
    let wakes = Counter()

    static let mac: [UInt8] = [0x02, 1, 2, 3, 4, 5]

    init(mergeable: Bool = true, carriesHeader: Bool = false) throws {
        receive = try SimulatedDriver(size: 16, memorySize: 1 << 20)
        transmit = SimulatedDriver(sharing: receive.memory, size: 16, rings: 0x4000)
        backend = MemoryNetwork(carriesHeader: carriesHeader)
        let wakes = self.wakes
        device = VirtioNet(backend: backend, mac: Self.mac) { wakes.increment() }
        receiveQueue = try receive.queue()
        device.activate(queues: [receiveQueue, try transmit.queue()],
                        features: mergeable ? VirtioNet.Feature.mergeableReceiveBuffers : 0, interrupt: interrupt)
    }

    mutating func postTransmit(_ buffers: [(UInt64, UInt32, Bool)]) throws {
        try transmit.post(buffers)
    }

    /// The driver notifies the transmit queue; the I/O thread serves it.
    func notifyTransmit() {
        device.queueNotified(1)
        device.serveReady([:], woken: true)
    }

    func frame(_ length: Int, seed: UInt8 = 1) -> [UInt8] {
        (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) }
    }

    @Test func configurationHoldsTheMACAndLinkUp() {
        var bytes = [UInt8](repeating: 0xff, count: 8)
        bytes.withUnsafeMutableBytes { device.readConfiguration(offset: 0, into: $0) }
        #expect(bytes == Self.mac + [1, 0])
        #expect(device.deviceFeatures & VirtioNet.Feature.offloads == 0, "passt's stream has no header: no offloads")
    }

    @Test mutating func transmitStripsTheHeader() throws {
        try receive.memory.write([UInt8](repeating: 0, count: 12), at: 0x10000)
        try receive.memory.write(frame(60), at: 0x11000)
        try postTransmit([(0x10000, 12, false), (0x11000, 60, false)])
        device.queueNotified(1)
        #expect(backend.sent.isEmpty, "the vCPU only notes the notification")
        #expect(wakes.value == 2, "activation, then the notification, wake the I/O thread")
        device.serveReady([:], woken: true)
        #expect(backend.sent == [frame(60)])
        #expect(device.statistics.transmitted == 1)
        // A header alone, and more than the largest frame, are dropped without breaking the queue.
        try postTransmit([(0x10000, 12, false)])
        try postTransmit([(0x20000, UInt32(12 + VirtioNet.maximumFrameLength + 1), false)])
        notifyTransmit()
        #expect(backend.sent.count == 1)
        #expect(device.statistics.transmitDropped == 2)
        #expect(!interrupt.recorded.contains { $0.hasPrefix("reset") })
    }

    @Test mutating func aBackendThatTakesNothingLeavesFramesInTheRing() throws {
        try receive.memory.write([UInt8](repeating: 0, count: 12) + frame(60), at: 0x10000)
        backend.full = true
        for _ in 0..<3 { try postTransmit([(0x10000, 72, false)]) }
        notifyTransmit()
        #expect(backend.sent.isEmpty)
        #expect(try transmit.usedIndex() == 0, "no chain is taken while the backend is not ready")
        #expect(device.pollRequests().map(\.events) == [Int16(POLLIN | POLLOUT)], "receive waits to read, transmit to write")
        // A wake-up alone does not retry; the backend's descriptor polling writable does.
        device.serveReady([:], woken: true)
        #expect(backend.sent.isEmpty)
        backend.full = false
        device.serveReady([backend.descriptor: Int16(POLLOUT)], woken: false)
        #expect(backend.sent.count == 3)
        #expect(try transmit.usedIndex() == 3)
        #expect(device.pollRequests().map(\.events) == [Int16(POLLIN)])
    }

    @Test func oneTurnSendsABoundedNumberOfFramesAndAsksForAnother() throws {
        let memory = try GuestMemory(size: 1 << 20)
        var driver = SimulatedDriver(sharing: memory, size: 256, rings: 0x4000)
        let backend = MemoryNetwork()
        let wakes = Counter()
        let device = VirtioNet(backend: backend, mac: Self.mac) { wakes.increment() }
        let receive = SimulatedDriver(sharing: memory, size: 16, rings: 0x1000)
        device.activate(queues: [try receive.queue(), try driver.queue()], features: 0, interrupt: RecordingInterrupt())
        try memory.write([UInt8](repeating: 0, count: 12) + frame(60), at: 0x10000)
        for _ in 0..<200 { try driver.post([(0x10000, 72, false)]) }
        device.queueNotified(1)
        device.serveReady([:], woken: true)
        #expect(backend.sent.count == VirtioNet.framesPerPump)
        #expect(wakes.value == 3, "activation, the notification, and the unfinished turn")
        while wakes.value < 10 && backend.sent.count < 200 { device.serveReady([:], woken: true) }
        #expect(backend.sent.count == 200)
        #expect(try driver.usedIndex() == 200)
    }

    @Test mutating func receiveSpreadsAFrameOverMergeableBuffers() throws {
        for index in 0..<4 { try receive.post([(0x10000 + UInt64(index) * 0x1000, 1000, true)]) }
        backend.incoming = [frame(2500)]
        #expect(device.pumpReceive() == .backend)
        #expect(try receive.usedIndex() == 3)
        #expect(try receive.usedElement(0).length == 1000)
        #expect(try receive.usedElement(1).length == 1000)
        #expect(try receive.usedElement(2).length == 512)
        var bytes = try receive.memory.read(at: 0x10000, count: 1000) + receive.memory.read(at: 0x11000, count: 1000)
            + receive.memory.read(at: 0x12000, count: 512)
        #expect(bytes[10] == 3 && bytes[11] == 0, "num_buffers")
        #expect(bytes[0..<10].allSatisfy { $0 == 0 })
        bytes.removeFirst(12)
        #expect(bytes == frame(2500))
        #expect(interrupt.recorded == ["used"])
    }

    @Test mutating func aGuestWithoutBuffersLeavesFramesInTheBackend() throws {
        backend.incoming = [frame(100), frame(200)]
        #expect(device.pumpReceive() == .guest)
        #expect(backend.incoming.count == 1, "one frame waits in the device, the rest stay in the backend")
        try receive.post([(0x10000, 2048, true)])
        device.queueNotified(0)
        #expect(wakes.value == 2, "activation and the new buffers each wake the I/O thread")
        #expect(device.pumpReceive() == .guest)
        #expect(try receive.usedIndex() == 1)
        #expect(try receive.memory.read(at: 0x1000c, count: 100) == frame(100))
    }

    @Test mutating func aFrameTooLargeForEveryBufferIsDroppedAndTheNextDelivered() throws {
        try receive.post([(0x10000, 100, true)])
        backend.incoming = [frame(3000), frame(50)]
        // With MRG_RXBUF the one chain is too small, and more may come: it waits.
        #expect(device.pumpReceive() == .guest)
        #expect(try receive.usedIndex() == 0)
        for index in 1..<16 { try receive.post([(0x10000 + UInt64(index) * 0x100, 100, true)]) }
        // 16 chains of 100 bytes cannot hold 3012 bytes: the queue is full, the frame goes.
        #expect(device.pumpReceive() == .backend)
        #expect(device.statistics.receiveDropped == 1)
        #expect(try receive.usedIndex() == 1)
        #expect(try receive.memory.read(at: 0x1000c, count: 50) == frame(50))
    }

    @Test func withoutMergeableBuffersAFrameNeedsOneChain() throws {
        var test = try VirtioNetTests(mergeable: false)
        try test.receive.post([(0x10000, 64, true)])
        try test.receive.post([(0x11000, 4096, true)])
        test.backend.incoming = [test.frame(100), test.frame(40)]
        #expect(test.device.pumpReceive() == .backend)
        // The 100-byte frame fits no single chain of 64 bytes: dropped; the 40-byte one fits.
        #expect(test.device.statistics.receiveDropped == 1)
        #expect(try test.receive.usedIndex() == 1)
        #expect(try test.receive.usedElement(0).length == 52)
    }

    @Test mutating func aReadableReceiveBufferBreaksTheQueue() throws {
        try receive.post([(0x10000, 2048, false)])
        backend.incoming = [frame(100)]
        #expect(device.pumpReceive() == .guest)
        #expect(interrupt.recorded.first?.hasPrefix("reset:") == true)
        try receive.post([(0x11000, 2048, true)])
        #expect(device.pumpReceive() == .guest)
        #expect(try receive.usedIndex() == 0)
    }

    @Test mutating func aClosedBackendIsReportedOnce() throws {
        backend.gone = true
        try receive.post([(0x10000, 2048, true)])
        #expect(device.pumpReceive() == .closed)
        #expect(device.pumpReceive() == .closed)
    }

    @Test func aHeaderCarryingBackendGetsOffloadsAndKeepsTheHeader() throws {
        var test = try VirtioNetTests(carriesHeader: true)
        #expect(test.device.deviceFeatures & VirtioNet.Feature.offloads == VirtioNet.Feature.offloads)
        try test.receive.memory.write([1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0] + test.frame(60), at: 0x10000)
        try test.postTransmit([(0x10000, 72, false)])
        test.notifyTransmit()
        #expect(test.backend.sent.first?.count == 72)
        #expect(test.backend.sent.first?.prefix(2) == [1, 4])
        test.backend.incoming = [[0x01] + [UInt8](repeating: 0, count: 11) + test.frame(30)]
        try test.receive.post([(0x20000, 2048, true)])
        #expect(test.device.pumpReceive() == .backend)
        #expect(try test.receive.memory.read(at: 0x20000, count: 12) == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0])
    }

    /// A frame waiting in the device for receive buffers, or one the backend was not
    /// ready to take, would be lost by a snapshot.
    @Test mutating func framesInFlightAreNotIdle() throws {
        #expect(device.isIdle)
        backend.incoming = [frame(100)]
        #expect(device.pumpReceive() == .guest)
        #expect(!device.isIdle, "a frame waits for buffers")
        try receive.post([(0x10000, 2048, true)])
        #expect(device.pumpReceive() == .backend)
        #expect(device.isIdle)
        backend.full = true
        try receive.memory.write([UInt8](repeating: 0, count: 12) + frame(60), at: 0x20000)
        try postTransmit([(0x20000, 72, false)])
        notifyTransmit()
        #expect(!device.isIdle, "the backend is not ready for the guest's frame")
        backend.full = false
        device.serveReady([backend.descriptor: Int16(POLLOUT)], woken: false)
        #expect(backend.sent.count == 1)
        #expect(device.isIdle)
    }

    @Test mutating func heldChainsSurviveASnapshot() throws {
        try receive.post([(0x10000, 100, true)])
        backend.incoming = [frame(300)]
        #expect(device.pumpReceive() == .guest)
        var writer = StateWriter()
        device.saveState(into: &writer)
        let restored = VirtioNet(backend: backend, mac: Self.mac) {}
        let restoredQueue = try receive.queue()
        restoredQueue.position = receiveQueue.position
        restored.activate(queues: [restoredQueue, try transmit.queue()], features: VirtioNet.Feature.mergeableReceiveBuffers, interrupt: interrupt)
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        try receive.post([(0x11000, 400, true)])
        backend.incoming = [frame(150)]
        #expect(restored.pumpReceive() == .backend)
        #expect(try receive.usedIndex() == 2, "the held chain and the new one carry the 162 bytes")
        #expect(try receive.usedElement(0).id == 0)
    }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func increment() { count.withLock { $0 += 1 } }
}

/// passt's framing over a real socket pair: lengths big-endian, frames split anywhere by
/// the stream, and a peer that breaks the framing ends the backend.
@Suite struct StreamNetworkTests {
    let pair: [Int32]
    let network: StreamNetwork

    init() throws {
        var pair: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        self.pair = pair
        network = StreamNetwork(socket: pair[0])
    }

    func peerWrite(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(pair[1], $0.baseAddress, $0.count) }
    }

    func peerRead(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = bytes.withUnsafeMutableBytes { read(pair[1], $0.baseAddress! + got, count - got) }
            guard n > 0 else { break }
            got += n
        }
        return Array(bytes.prefix(got))
    }

    @Test func sendsALengthThenTheFrame() {
        let head: [UInt8] = [1, 2, 3]
        let tail: [UInt8] = [4, 5]
        head.withUnsafeBytes { first in
            tail.withUnsafeBytes { second in
                #expect(network.send([first, second]))
            }
        }
        #expect(peerRead(9) == [0, 0, 0, 5, 1, 2, 3, 4, 5])
        close(pair[1])
    }

    @Test func receivesFramesSplitAnywhere() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == 0)
        peerWrite([0, 0])
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == 0)
        peerWrite([1, 0x2c] + [UInt8](repeating: 7, count: 100))
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == 0, "200 bytes of 300 are not a frame")
        peerWrite([UInt8](repeating: 7, count: 200) + [0, 0, 0, 2, 8, 9])
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == 300)
        #expect(buffer.prefix(300).allSatisfy { $0 == 7 })
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == 2)
        #expect(buffer.prefix(2) == [8, 9])
        close(pair[1])
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == nil)
    }

    @Test func aPeerThatStopsReadingGetsEveryFrameWholeOnceItReadsAgain() {
        let payload = [UInt8](repeating: 0x6b, count: 60000)
        var frames = 0
        var ready = true
        while ready && frames < 100 {
            payload.withUnsafeBytes { #expect(network.send([$0])) }
            frames += 1
            ready = network.readyToSend()
        }
        #expect(!ready, "a socket buffer holds less than 100 frames of 60000 bytes")
        _ = fcntl(pair[1], F_SETFL, O_NONBLOCK)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        let expected = frames * (4 + payload.count)
        for _ in 0..<10000 where received.count < expected {
            let count = chunk.withUnsafeMutableBytes { read(pair[1], $0.baseAddress, $0.count) }
            if count > 0 { received += chunk[0..<count] }
            _ = network.readyToSend()
        }
        #expect(received.count == expected)
        #expect(network.readyToSend())
        for index in 0..<frames {
            let start = index * (4 + payload.count)
            #expect(received[start..<start + 4] == [0, 0, 0xea, 0x60])
            #expect(received[start + 4..<start + 4 + payload.count].allSatisfy { $0 == 0x6b })
        }
        close(pair[1])
        #expect(payload.withUnsafeBytes { network.send([$0]) } == false, "the peer is gone")
    }

    @Test func aFrameInMorePartsThanSendmsgTakesArrivesWhole() {
        let parts = (0..<1100).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: 3) }
        let pointers = parts.map { part in UnsafeRawBufferPointer(UnsafeMutableRawBufferPointer.allocate(byteCount: 3, alignment: 1)) }
        defer { pointers.forEach { $0.deallocate() } }
        for (part, pointer) in zip(parts, pointers) { UnsafeMutableRawBufferPointer(mutating: pointer).copyBytes(from: part) }
        #expect(network.send(pointers))
        #expect(network.readyToSend())
        #expect(peerRead(4 + 3300) == [0, 0, 0x0c, 0xe4] + parts.flatMap { $0 })
        close(pair[1])
    }

    @Test func aLengthBeyondTheLargestFrameEndsTheStream() {
        var buffer = [UInt8](repeating: 0, count: 2048)
        peerWrite([0, 0x10, 0, 0])
        #expect(buffer.withUnsafeMutableBytes { network.receive(into: $0) } == nil)
        close(pair[1])
    }
}

@Suite struct TapNetworkTests {
    @Test func badNamesAndMissingDevicesAreRefusedWithTheReason() {
        #expect(throws: TapNetwork.Error.badName("a/b")) { try TapNetwork(name: "a/b") }
        #expect(throws: TapNetwork.Error.badName("")) { try TapNetwork(name: "") }
        #expect(throws: TapNetwork.Error.badName("sixteen-chars-xx")) { try TapNetwork(name: "sixteen-chars-xx") }
        do {
            _ = try TapNetwork(name: "microvm-none0")
            Issue.record("a tap that does not exist was opened")
        } catch {
            #expect(error.description.hasPrefix("cannot open the tap device microvm-none0"), "\(error)")
        }
    }
}
