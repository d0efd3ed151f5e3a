import CLinux
@testable import Devices
import Glibc
@testable import Memory
@testable import Runtime
import Testing

/// virtio-vsock against a simulated driver and real host sockets: connections both ways,
/// credit in both directions, shutdown, and RSTs for what matches no connection.
@Suite struct VirtioVsockTests {
    var receive: SimulatedDriver
    var transmit: SimulatedDriver
    let device: VirtioVsock
    let interrupt = RecordingInterrupt()
    let wakes = Counter()
    let listenerPath: String
    /// The host ends of the connections the guest opened, by port.
    let hostEnds: HostEnds
    /// Receive chains posted, by head: their buffer's address.
    var receiveBuffers: [UInt16: UInt64] = [:]
    var posted = 0
    var seenReceives: UInt16 = 0

    final class HostEnds: @unchecked Sendable {
        var ends: [UInt32: Int32] = [:]
        var refuse = false
    }

    /// Guest connections reach one end of a socket pair, the other kept in `hostEnds`.
    /// Without `hostAttached` the device has no host side until `attachHost`.
    init(hostAttached: Bool = true) throws {
        let hostEnds = HostEnds()
        try self.init(hostEnds: hostEnds, connect: hostAttached ? Self.pairs(hostEnds) : nil)
    }

    /// Guest connections reach the Unix sockets `hostPath`_PORT, as microvm's do.
    init(hostPath: String) throws {
        try self.init(hostEnds: HostEnds()) { port in VsockHostSocket.connect(hostPath, port: port) }
    }

    private init(hostEnds: HostEnds, connect: (@Sendable (UInt32) -> Int32?)?) throws {
        receive = try SimulatedDriver(size: 16, memorySize: 4 << 20)
        transmit = SimulatedDriver(sharing: receive.memory, size: 16, rings: 0x4000)
        listenerPath = "/tmp/microvm-vsock-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        self.hostEnds = hostEnds
        let wakes = self.wakes
        if let connect {
            device = VirtioVsock(listener: try UnixSocket.listen(at: listenerPath), connect: connect, wake: { wakes.increment() })
        } else {
            device = VirtioVsock(wake: { wakes.increment() })
        }
        device.activate(queues: [try receive.queue(), try transmit.queue(), nil], features: 0, interrupt: interrupt)
    }

    /// Each connection a socket pair: one end for the device, the other kept in `hostEnds`.
    static func pairs(_ hostEnds: HostEnds) -> @Sendable (UInt32) -> Int32? {
        { port in
            guard !hostEnds.refuse else { return nil }
            var pair: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { return nil }
            _ = fcntl(pair[0], F_SETFL, O_NONBLOCK)
            hostEnds.ends[port] = pair[1]
            return pair[0]
        }
    }

    /// Gives a device built without its host side the one `init()` gives.
    func attachHost() throws {
        try device.attach(listener: try UnixSocket.listen(at: listenerPath), connect: Self.pairs(hostEnds))
    }

    /// Posts `count` receive chains of a header and 4 KiB, as Linux does.
    mutating func postReceiveBuffers(_ count: Int) throws {
        for _ in 0..<count {
            // 64 buffers below 1 MiB, reused in turn: a buffer is posted again only long after it was used.
            let address = 0x10000 + UInt64(posted % 64) * 0x2000
            let head = try receive.post([(address, UInt32(VsockHeader.size + 4096), true)])
            receiveBuffers[head] = address
            posted += 1
        }
    }

    /// Sends one packet from the guest.
    mutating func guestSends(_ operation: VsockHeader.Operation, from guestPort: UInt32 = 1234, to hostPort: UInt32 = 5000,
                             payload: [UInt8] = [], flags: UInt32 = 0, bufferAllocation: UInt32 = 65536, forwardCount: UInt32 = 0) throws {
        let header = VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: guestPort, destinationPort: hostPort, operation: operation,
                                 length: UInt32(payload.count), flags: flags, bufferAllocation: bufferAllocation, forwardCount: forwardCount)
        try receive.memory.write(header.bytes + payload, at: 0x200000)
        try transmit.post([(0x200000, UInt32(VsockHeader.size + payload.count), false)])
        device.queueNotified(1)
    }

    /// What the device put in the receive queue since the last call: headers and payloads.
    mutating func guestReceives() throws -> [(header: VsockHeader, payload: [UInt8])] {
        var packets: [(VsockHeader, [UInt8])] = []
        while seenReceives != (try receive.usedIndex()) {
            let (id, length) = try receive.usedElement(seenReceives)
            seenReceives &+= 1
            let address = try #require(receiveBuffers[UInt16(id)])
            let bytes = try receive.memory.read(at: GuestAddress(address), count: Int(length))
            packets.append((VsockHeader(bytes), Array(bytes.dropFirst(VsockHeader.size))))
        }
        return packets
    }

    /// One turn of the event loop: a poll that does not wait, then the device serves what was ready.
    func loopTurn() {
        var requests = device.pollRequests()
        _ = poll(&requests, nfds_t(requests.count), 0)
        var ready: [Int32: Int16] = [:]
        for request in requests where request.revents != 0 { ready[request.fd] = request.revents }
        device.serveReady(ready, woken: true)
    }

    /// Receive chains posted and not yet used.
    var outstandingReceives: Int { posted - Int(seenReceives) }

    func hostRead(_ fd: Int32) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return count > 0 ? Array(buffer[0..<count]) : []
    }

    @Test func configurationHoldsTheGuestCID() {
        var bytes = [UInt8](repeating: 0xff, count: 8)
        bytes.withUnsafeMutableBytes { device.readConfiguration(offset: 0, into: $0) }
        #expect(bytes == [3, 0, 0, 0, 0, 0, 0, 0])
        unlink(listenerPath)
    }

    @Test mutating func aGuestConnectsToTheHostAndStreamsBothWays() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(4)
        try guestSends(.request)
        loopTurn()
        let response = try guestReceives()
        #expect(response.map(\.header.operation) == [VsockHeader.Operation.response.rawValue])
        #expect(response.first?.header.sourcePort == 5000 && response.first?.header.destinationPort == 1234)
        #expect(response.first?.header.bufferAllocation == VirtioVsock.bufferAllocation)
        let host = try #require(hostEnds.ends[5000])
        try guestSends(.readWrite, payload: Array("hello".utf8))
        #expect(hostRead(host) == Array("hello".utf8))
        _ = Array("world".utf8).withUnsafeBytes { write(host, $0.baseAddress, $0.count) }
        loopTurn()
        let data = try guestReceives()
        let rw = data.filter { $0.header.operation == VsockHeader.Operation.readWrite.rawValue }
        #expect(rw.first?.payload == Array("world".utf8), "\(data.map(\.header))")
        // The credit update told the guest its 5 bytes reached the host.
        #expect(data.last?.header.forwardCount == 5)
    }

    @Test mutating func whatMatchesNoConnectionGetsAReset() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(4)
        hostEnds.refuse = true
        try guestSends(.request, to: 7000)
        try guestSends(.readWrite, from: 99, to: 5000, payload: [1, 2, 3])
        try guestSends(.reset, from: 98)
        loopTurn()
        let packets = try guestReceives()
        #expect(packets.map(\.header.operation) == [VsockHeader.Operation.reset.rawValue, VsockHeader.Operation.reset.rawValue])
        // The RW's RST is owed at once, the REQUEST's once the loop's connect failed.
        #expect(packets.map(\.header.sourcePort) == [5000, 7000])
        #expect(packets.map(\.header.destinationPort) == [99, 1234])
    }

    @Test mutating func theHostSendsNoMoreThanTheGuestsCredit() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(8)
        try guestSends(.request, bufferAllocation: 100)
        loopTurn()
        _ = try guestReceives()
        let host = try #require(hostEnds.ends[5000])
        _ = [UInt8](repeating: 7, count: 250).withUnsafeBytes { write(host, $0.baseAddress, $0.count) }
        loopTurn()
        let first = try guestReceives().filter { $0.header.operation == VsockHeader.Operation.readWrite.rawValue }
        #expect(first.map(\.payload.count).reduce(0, +) == 100)
        loopTurn()
        #expect(try guestReceives().isEmpty, "no credit, nothing sent")
        try guestSends(.creditUpdate, bufferAllocation: 100, forwardCount: 100)
        loopTurn()
        let second = try guestReceives().filter { $0.header.operation == VsockHeader.Operation.readWrite.rawValue }
        #expect(second.map(\.payload.count).reduce(0, +) == 100)
    }

    @Test mutating func aGuestSendingBeyondItsCreditIsReset() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(8)
        try guestSends(.request)
        loopTurn()
        _ = try guestReceives()
        // The host reads nothing: its socket fills, then the credit, then the guest is over.
        let chunk = [UInt8](repeating: 1, count: 60000)
        var reset = false
        for _ in 0..<64 where !reset {
            try guestSends(.readWrite, payload: chunk)
            loopTurn()
            reset = try guestReceives().contains { $0.header.operation == VsockHeader.Operation.reset.rawValue }
            if outstandingReceives < 4 { try postReceiveBuffers(4) }
        }
        #expect(reset)
        #expect(hostRead(try #require(hostEnds.ends[5000])).count > 0)
    }

    @Test mutating func aGuestShutdownIsAnsweredWithAResetOnceItsDataReachedTheHost() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(4)
        try guestSends(.request)
        loopTurn()
        _ = try guestReceives()
        try guestSends(.readWrite, payload: [9, 9, 9])
        try guestSends(.shutdown, flags: VsockHeader.shutdownSend | VsockHeader.shutdownReceive)
        loopTurn()
        #expect(try guestReceives().map(\.header.operation).contains(VsockHeader.Operation.reset.rawValue))
        let host = try #require(hostEnds.ends[5000])
        #expect(hostRead(host) == [9, 9, 9])
        #expect(recv(host, nil, 0, Int32(MSG_DONTWAIT)) == 0, "the host end sees the end of the stream")
    }

    @Test mutating func aHostClientConnectsToAGuestPort() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(4)
        let client = try UnixSocket.connect(to: listenerPath)
        defer { close(client) }
        _ = Array("CONNECT 6000\n".utf8).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        loopTurn()
        loopTurn()
        let request = try guestReceives()
        #expect(request.map(\.header.operation) == [VsockHeader.Operation.request.rawValue])
        let hostPort = try #require(request.first?.header.sourcePort)
        #expect(hostPort == 1 << 30 && request.first?.header.destinationPort == 6000)
        try guestSends(.response, from: 6000, to: hostPort)
        #expect(hostRead(client) == Array("OK \(hostPort)\n".utf8))
        try guestSends(.readWrite, from: 6000, to: hostPort, payload: [4, 2])
        #expect(hostRead(client) == [4, 2])
    }

    @Test mutating func aBadConnectLineClosesTheClient() throws {
        defer { unlink(listenerPath) }
        let client = try UnixSocket.connect(to: listenerPath)
        defer { close(client) }
        _ = Array("HELLO there\n".utf8).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        loopTurn()
        loopTurn()
        var byte: UInt8 = 0
        #expect(read(client, &byte, 1) == 0)
        #expect(device.pollRequests().count == 1, "only the listener is left")
    }

    @Test func withoutItsHostSideAGuestConnectIsReset() throws {
        var test = try VirtioVsockTests(hostAttached: false)
        defer { unlink(test.listenerPath) }
        #expect(test.device.pollRequests().isEmpty, "no listener to poll")
        try test.postReceiveBuffers(4)
        try test.guestSends(.request)
        test.loopTurn()
        #expect(try test.guestReceives().map(\.header.operation) == [VsockHeader.Operation.reset.rawValue])
        #expect(test.device.isIdle)

        let woken = test.wakes.value
        try test.attachHost()
        #expect(test.wakes.value == woken + 1, "the event loop is asked to poll the listener")
        #expect(test.device.pollRequests().count == 1)
        let spare = dup(0)
        defer { close(spare) }
        #expect(throws: AttachError.attached(device: "vsock device")) { try test.device.attach(listener: spare, connect: { _ in nil }) }
        try test.guestSends(.request)
        test.loopTurn()
        #expect(try test.guestReceives().map(\.header.operation) == [VsockHeader.Operation.response.rawValue])
        #expect(test.hostEnds.ends[5000] != nil)
        #expect(!test.device.isIdle)
        let client = try UnixSocket.connect(to: test.listenerPath)
        defer { close(client) }
        _ = Array("CONNECT 6000\n".utf8).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        test.loopTurn()
        test.loopTurn()
        #expect(try test.guestReceives().map(\.header.operation) == [VsockHeader.Operation.request.rawValue])
    }

    /// Idle means no connection open or being set up, whatever else waits: the RSTs the
    /// guest is owed are kept by a snapshot and sent by the restored device.
    @Test mutating func anIdleDeviceRoundTripsWithTheResetsItOwes() throws {
        defer { unlink(listenerPath) }
        #expect(device.isIdle)
        try guestSends(.readWrite, from: 99, to: 5000, payload: [1])
        #expect(device.isIdle, "an owed RST is no connection")
        try guestSends(.request)
        #expect(!device.isIdle, "a connect the event loop has yet to make")
        loopTurn()
        #expect(!device.isIdle, "an established connection")
        try guestSends(.reset)
        #expect(device.isIdle)
        var writer = StateWriter()
        device.saveState(into: &writer)

        let restored = VirtioVsock(wake: {})
        let restoredInterrupt = RecordingInterrupt()
        restored.activate(queues: [try receive.queue(), nil, nil], features: 0, interrupt: restoredInterrupt)
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        #expect(reader.isAtEnd)
        var again = StateWriter()
        restored.saveState(into: &again)
        #expect(again.bytes == writer.bytes)
        try postReceiveBuffers(4)
        restored.serveReady([:], woken: true)
        let packets = try guestReceives()
        #expect(packets.map(\.header.operation) == [VsockHeader.Operation.reset.rawValue])
        #expect(packets.first?.header.sourcePort == 5000 && packets.first?.header.destinationPort == 99)

        // More owed RSTs than a device keeps is no state it saved.
        var hostile = StateWriter()
        hostile.put(false)
        hostile.put(false)
        hostile.put(UInt32(1) << 30)
        hostile.put(UInt32(65))
        var hostileReader = StateReader(hostile.bytes)
        #expect(throws: StateError.invalid(what: "vsock owed resets")) { try restored.restoreState(from: &hostileReader) }
    }

    @Test mutating func shortAndForeignPacketsDoNoHarm() throws {
        defer { unlink(listenerPath) }
        try postReceiveBuffers(4)
        try receive.memory.write([1, 2, 3], at: 0x200000)
        try transmit.post([(0x200000, 3, false)])
        device.queueNotified(1)
        let foreign = VsockHeader(sourceCID: 7, destinationCID: 2, sourcePort: 1, destinationPort: 5000, operation: .request)
        try receive.memory.write(foreign.bytes, at: 0x200000)
        try transmit.post([(0x200000, UInt32(VsockHeader.size), false)])
        device.queueNotified(1)
        loopTurn()
        #expect(try guestReceives().map(\.header.operation) == [VsockHeader.Operation.reset.rawValue])
        #expect(hostEnds.ends.isEmpty)
        #expect(!interrupt.recorded.contains { $0.hasPrefix("reset") })
    }
}

@Suite struct VirtioVsockLifetimeTests {
    /// A released device closes its listener and every connection's host socket.
    @Test func aReleasedDeviceClosesEveryHostSocket() throws {
        let path = "/tmp/microvm-vsock-lifetime-\(getpid()).sock"
        defer { unlink(path) }
        var driver = try SimulatedDriver(size: 16, memorySize: 1 << 20)
        let header = VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: 1234, destinationPort: 5000, operation: .request,
                                 bufferAllocation: 65536)
        try driver.memory.write(header.bytes, at: 0x10000)
        let before = dup(0)
        close(before)
        let peers = VirtioVsockTests.HostEnds()
        do {
            let device = VirtioVsock(listener: try UnixSocket.listen(at: path), connect: { port in
                var pair: [Int32] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0 else { return nil }
                peers.ends[port] = pair[1]
                return pair[0]
            }, wake: {})
            let interrupt = RecordingInterrupt()
            let transmit = try driver.queue()
            device.activate(queues: [nil, transmit, nil], features: 0, interrupt: interrupt)
            try driver.post([(0x10000, UInt32(VsockHeader.size), false)])
            device.queueNotified(1)
            device.serveReady([:], woken: true)
            #expect(peers.ends.count == 1)
        }
        for peer in peers.ends.values { close(peer) }
        let after = dup(0)
        close(after)
        #expect(after == before)
    }
}

/// A guest connecting to a host listener that never accepts, whose backlog is full: the
/// connect must not wait (it once blocked the vCPU with the device's lock held, and the
/// VM stopped answering). If it blocked, the test thread would hang: a watchdog fails
/// the test after 30 s instead.
@Suite struct VirtioVsockHostBacklogTests {
    final class Outcome: @unchecked Sendable {
        var operations: [UInt16] = []
        var error: (any Error)?
    }

    @Test func aFullBacklogGetsTheGuestAResetWithoutWaiting() throws {
        let base = "/tmp/microvm-vsock-backlog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let hostPath = base + "_5000"
        defer { unlink(hostPath) }
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = try UnixSocket.address(hostPath)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0 && listen(listener, 0) == 0)
        // Clients that are never accepted, until the next one would have to wait.
        var clients: [Int32] = []
        defer { for client in clients { close(client) } }
        while clients.count < 16 {
            let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(client, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0 else {
                close(client)
                break
            }
            clients.append(client)
        }
        try #require(!clients.isEmpty && clients.count < 16, "the backlog filled")

        let outcome = Outcome()
        let thread = try NativeThread(name: "vsock-backlog") {
            do {
                var bench = try VirtioVsockTests(hostPath: base)
                defer { unlink(bench.listenerPath) }
                try bench.postReceiveBuffers(4)
                try bench.guestSends(.request, to: 5000)
                bench.loopTurn()
                outcome.operations = try bench.guestReceives().map(\.header.operation)
            } catch {
                outcome.error = error
            }
        }
        guard clinux_timedjoin(thread.handle, 30_000) == 0 else {
            Issue.record("the guest's REQUEST to a full backlog was still waiting after 30 s")
            return
        }
        #expect(outcome.error == nil)
        #expect(outcome.operations == [VsockHeader.Operation.reset.rawValue])
    }
}
