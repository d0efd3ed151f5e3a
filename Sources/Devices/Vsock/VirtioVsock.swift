import Glibc
import Memory
import Synchronization

/// virtio-vsock (virtio 1.2, section 5.10) with Firecracker's host side: the guest is
/// CID 3, the host CID 2. A host program connects to the listener microvm made at PATH
/// and writes `CONNECT <port>\n`; once the guest accepts it reads `OK <hostport>\n` and
/// the stream follows. A guest connecting to CID 2 port P reaches the Unix socket that
/// `connect(P)` opens (PATH_P, see `VsockHostSocket`). Streams only; a packet for an
/// unknown connection gets a RST.
///
/// Bounds: at most `maximumConnections` connections; per connection the host holds at
/// most `bufferAllocation` bytes the guest sent (the credit it was given) and a CONNECT
/// line of 32 bytes; at most `maximumOwedResets` RSTs wait for receive buffers. Transmit
/// runs on the notifying vCPU's thread and never blocks; receive, the host sockets and
/// the connects for the guest's REQUESTs are served by the event loop through
/// `PolledDevice`. No system call that could wait runs under the device's lock.
///
/// A device built without its host side (a VM template's, bound per run) answers the
/// guest's connects with RST until `attach` gives it a listener and the host's ports.
public final class VirtioVsock: VirtioDevice, Sendable {
    public static let guestCID: UInt64 = 3
    public static let hostCID: UInt64 = 2
    public static let queueSize: UInt16 = 256
    public static let bufferAllocation: UInt32 = 256 * 1024
    public static let maximumConnections = 64
    static let maximumOwedResets = 64
    static let maximumLine = 32
    /// Host ports microvm gives host-initiated connections start here (as Firecracker's do).
    static let firstHostPort: UInt32 = 1 << 30
    static let receiveQueue = 0
    static let transmitQueue = 1
    static let eventQueue = 2

    /// The host side: the listener for host clients (the device owns it), and how to
    /// reach the host's port P.
    struct Host {
        let listener: Int32
        let connect: @Sendable (UInt32) -> Int32?
    }

    struct State {
        var host: Host?
        var receive = ServedQueue()
        var transmit = ServedQueue()
        var connections: [VsockConnection] = []
        /// RSTs owed for packets that matched no connection: (host port, guest port).
        var owedResets: [(UInt32, UInt32)] = []
        var nextHostPort = VirtioVsock.firstHostPort
        /// The last receive pump found no buffer: a receive notification wakes the loop.
        var starved = false
    }

    private let state = Mutex(State())
    private let wake: @Sendable () -> Void

    public var deviceType: UInt32 { 19 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize, Self.queueSize, Self.queueSize] }
    public var deviceFeatures: UInt64 { 0 }

    /// A device whose host side comes later, through `attach`; `wake` asks the event loop
    /// to call `serveReady`, from any thread.
    public init(wake: @escaping @Sendable () -> Void) {
        self.wake = wake
    }

    /// A device with its host side from the start (see `attach`).
    public convenience init(listener: Int32, connect: @escaping @Sendable (UInt32) -> Int32?, wake: @escaping @Sendable () -> Void) {
        self.init(wake: wake)
        state.withLock { $0.host = Host(listener: listener, connect: connect) }
    }

    deinit {
        state.withLock { state in
            if let host = state.host { close(host.listener) }
            for connection in state.connections { connection.closeHost() }
        }
    }

    /// Binds the host side, from any thread: `listener` is a listening, non-blocking Unix
    /// socket for host clients, which the device then owns and closes; `connect(port)`
    /// opens a non-blocking connection for a guest that connects to the host's `port`, or
    /// nil, without waiting (it is called on the event loop's thread, outside the
    /// device's lock). Refused if the device has its host side: the caller keeps `listener`.
    public func attach(listener: Int32, connect: @escaping @Sendable (UInt32) -> Int32?) throws(AttachError) {
        try state.withLock { state throws(AttachError) in
            guard state.host == nil else { throw .attached(device: "vsock device") }
            state.host = Host(listener: listener, connect: connect)
        }
        // The event loop polls the listener from its next turn on.
        wake()
    }

    /// Whether a snapshot loses nothing in flight: no connection is open or being set up
    /// (their streams live in host sockets, which a snapshot cannot keep).
    public var isIdle: Bool {
        state.withLock { $0.connections.isEmpty }
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for index in 0..<data.count {
            let position = offset + index
            data[index] = position >= 0 && position < 8 ? UInt8(truncatingIfNeeded: Self.guestCID >> (position * 8)) : 0
        }
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        state.withLock { state in
            state.receive = ServedQueue(queue: queues[Self.receiveQueue], interrupt: interrupt)
            state.transmit = ServedQueue(queue: queues[Self.transmitQueue], interrupt: interrupt)
        }
        wake()
    }

    public func reset() {
        state.withLock { state in
            state.receive = ServedQueue()
            state.transmit = ServedQueue()
            // The driver forgot every connection: so does the device.
            for connection in state.connections { connection.closeHost() }
            state.connections = []
            state.owedResets = []
        }
    }

    public func queueNotified(_ index: Int) {
        switch index {
        case Self.receiveQueue:
            if state.withLock({ $0.starved }) { wake() }
        case Self.transmitQueue:
            // Whatever the guest sent may owe it packets or give it credit: the loop looks again.
            let (signal, handled) = state.withLock { state -> ((@Sendable () -> Void)?, Bool) in
                var transmit = state.transmit
                var handled = false
                let signal = transmit.serveAvailable { chain, queue throws(VirtqueueError) in
                    let readable = try queue.readableBuffers(of: chain)
                    handleFromGuest(readable, &state)
                    handled = true
                    return 0
                }
                state.transmit = transmit
                return (signal, handled)
            }
            signal?()
            if handled { wake() }
        default:
            // The event queue: microvm sends no events. No transport reset after a restore
            // either: only a device without connections is snapshotted, so the restored
            // guest has none to reset.
            break
        }
    }

    /// What one packet from the guest does.
    private func handleFromGuest(_ readable: GuestBuffers, _ state: inout State) {
        // Too short to be a packet: dropped.
        guard readable.count >= VsockHeader.size else { return }
        let header = VsockHeader(readable.prefix(VsockHeader.size))
        let payloadLength = min(Int(header.length), readable.count - VsockHeader.size)
        guard header.sourceCID == Self.guestCID, header.destinationCID == Self.hostCID, header.type == VsockHeader.streamType,
              let operation = VsockHeader.Operation(rawValue: header.operation) else {
            if header.operation != VsockHeader.Operation.reset.rawValue { owe(resetFor: header, &state) }
            return
        }
        guard let index = state.connections.firstIndex(where: { $0.localPort == header.destinationPort && $0.peerPort == header.sourcePort }) else {
            if operation == .request {
                accept(header, &state)
            } else if operation != .reset {
                owe(resetFor: header, &state)
            }
            return
        }
        state.connections[index].peerBufferAllocation = header.bufferAllocation
        state.connections[index].peerForwardCount = header.forwardCount
        switch operation {
        case .request:
            // A second REQUEST on a live connection breaks the protocol.
            drop(index, resetting: true, &state)
        case .response:
            guard state.connections[index].state == .connecting else {
                drop(index, resetting: true, &state)
                return
            }
            state.connections[index].state = .established
            // Not part of the stream, so not counted in fwd_cnt; a fresh socket takes 16 bytes at once.
            let reply = Array("OK \(state.connections[index].localPort)\n".utf8)
            let fd = state.connections[index].fd
            guard reply.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }) == reply.count else {
                drop(index, resetting: true, &state)
                return
            }
        case .readWrite:
            guard state.connections[index].state == .established || state.connections[index].state == .closing,
                  !state.connections[index].guestFinishedSending else {
                drop(index, resetting: true, &state)
                return
            }
            let parts = readable.slices(from: VsockHeader.size, length: payloadLength).map { UnsafeRawBufferPointer($0) }
            guard state.connections[index].forward(parts) else {
                // More than the credit it was given: a broken or hostile guest.
                drop(index, resetting: true, &state)
                return
            }
            if state.connections[index].creditWorthTelling { state.connections[index].owed.insert(.creditUpdate) }
        case .creditUpdate:
            break
        case .creditRequest:
            state.connections[index].owed.insert(.creditUpdate)
        case .shutdown:
            guard state.connections[index].state != .hostConnecting else {
                // Nothing was established to shut down.
                drop(index, resetting: true, &state)
                return
            }
            if header.flags & VsockHeader.shutdownSend != 0 {
                state.connections[index].guestFinishedSending = true
                guard state.connections[index].flushPending() else {
                    drop(index, resetting: true, &state)
                    return
                }
            }
            if header.flags & VsockHeader.shutdownReceive != 0 { state.connections[index].hostFinished = true }
            if header.flags & (VsockHeader.shutdownSend | VsockHeader.shutdownReceive) == VsockHeader.shutdownSend | VsockHeader.shutdownReceive {
                // The guest closed: it waits for our RST, which ends the connection.
                state.connections[index].state = .closing
                state.connections[index].owed.insert(.reset)
            }
        case .reset:
            drop(index, resetting: false, &state)
        }
    }

    /// A guest connecting to the host's port: the event loop connects to the Unix socket
    /// PATH_port (`connectWaiting`), and the guest then gets a RESPONSE or a RST. Not here:
    /// this runs on a vCPU's thread under the lock, where nothing may wait. Without a host
    /// side there is nothing to reach: a RST.
    private func accept(_ header: VsockHeader, _ state: inout State) {
        guard state.host != nil, state.connections.count < Self.maximumConnections else {
            owe(resetFor: header, &state)
            return
        }
        var connection = VsockConnection(fd: -1, localPort: header.destinationPort, peerPort: header.sourcePort, state: .hostConnecting)
        connection.peerBufferAllocation = header.bufferAllocation
        connection.peerForwardCount = header.forwardCount
        state.connections.append(connection)
    }

    private func owe(resetFor header: VsockHeader, _ state: inout State) {
        oweReset(host: header.destinationPort, guest: header.sourcePort, &state)
    }

    /// Owes the guest a RST; at most `maximumOwedResets` wait, more are not sent.
    private func oweReset(host: UInt32, guest: UInt32, _ state: inout State) {
        guard state.owedResets.count < Self.maximumOwedResets else { return }
        state.owedResets.append((host, guest))
    }

    /// Ends a connection: closes the host socket, and owes the guest a RST if asked.
    private func drop(_ index: Int, resetting: Bool, _ state: inout State) {
        let connection = state.connections.remove(at: index)
        connection.closeHost()
        if resetting { oweReset(host: connection.localPort, guest: connection.peerPort, &state) }
    }
}

extension VirtioVsock: PolledDevice {
    public func pollRequests() -> [pollfd] {
        state.withLock { state in
            var requests = state.host.map { [pollfd(fd: $0.listener, events: Int16(POLLIN), revents: 0)] } ?? []
            for connection in state.connections {
                var events: Int32 = 0
                switch connection.state {
                case .awaitingConnectLine:
                    events = POLLIN
                case .established, .closing:
                    if !connection.hostReadable && !connection.hostFinished && connection.peerCredit > 0 && !state.starved { events |= POLLIN }
                    if !connection.pendingToHost.isEmpty { events |= POLLOUT }
                case .connecting, .hostConnecting:
                    break
                }
                if events != 0 { requests.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0)) }
            }
            return requests
        }
    }

    public func serveReady(_ ready: [Int32: Int16], woken: Bool) {
        connectWaiting()
        let signal = state.withLock { state -> (@Sendable () -> Void)? in
            if let listener = state.host?.listener, ready[listener] != nil { acceptHostClients(listener, &state) }
            var index = 0
            while index < state.connections.count {
                let connection = state.connections[index]
                guard let events = ready[connection.fd] else {
                    index += 1
                    continue
                }
                if connection.state == .awaitingConnectLine {
                    if !readConnectLine(index, &state) { continue }
                } else {
                    if events & Int16(POLLOUT) != 0 {
                        guard state.connections[index].flushPending() else {
                            drop(index, resetting: true, &state)
                            continue
                        }
                        if state.connections[index].creditWorthTelling { state.connections[index].owed.insert(.creditUpdate) }
                    }
                    if events & Int16(POLLIN | POLLHUP | POLLERR) != 0 { state.connections[index].hostReadable = true }
                }
                index += 1
            }
            return pumpReceive(&state)
        }
        signal?()
    }

    /// Connects the guest's waiting REQUESTs to their host sockets, with the lock released
    /// across the connects: a vCPU notifying meanwhile is never held up by them. What the
    /// guest did in between wins: a connection it reset (or a device reset) closes the
    /// socket just opened for it.
    private func connectWaiting() {
        let (connect, waiting) = state.withLock { state in
            (state.host?.connect, state.connections.filter { $0.state == .hostConnecting }.map { (local: $0.localPort, peer: $0.peerPort) })
        }
        guard let connect, !waiting.isEmpty else { return }
        let opened = waiting.map { (ports: $0, fd: connect($0.local)) }
        state.withLock { state in
            for (ports, fd) in opened {
                guard let index = state.connections.firstIndex(where: {
                    $0.state == .hostConnecting && $0.localPort == ports.local && $0.peerPort == ports.peer
                }) else {
                    if let fd { close(fd) }
                    continue
                }
                guard let fd else {
                    drop(index, resetting: true, &state)
                    continue
                }
                state.connections[index].fd = fd
                state.connections[index].state = .established
                state.connections[index].owed.insert(.response)
            }
        }
    }

    /// Takes the host clients waiting at the listener; beyond the limit, closes them at once.
    private func acceptHostClients(_ listener: Int32, _ state: inout State) {
        for _ in 0..<Self.maximumConnections {
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            guard state.connections.count < Self.maximumConnections else {
                close(fd)
                continue
            }
            state.connections.append(VsockConnection(fd: fd, localPort: 0, peerPort: 0, state: .awaitingConnectLine))
        }
    }

    /// Reads a host client's `CONNECT <port>\n` a byte at a time (what follows the line
    /// belongs to the stream). Returns false if the connection was dropped.
    private func readConnectLine(_ index: Int, _ state: inout State) -> Bool {
        var byte: UInt8 = 0
        while state.connections[index].line.count < Self.maximumLine {
            let count = recv(state.connections[index].fd, &byte, 1, Int32(MSG_DONTWAIT))
            if count < 0 && (errno == EAGAIN || errno == EINTR) { return true }
            guard count == 1 else { break }
            guard byte != 0x0a else {
                let line = String(decoding: state.connections[index].line, as: UTF8.self)
                guard line.hasPrefix("CONNECT "), let port = UInt32(line.dropFirst(8)) else { break }
                while state.connections.contains(where: { $0.localPort == state.nextHostPort }) { state.nextHostPort &+= 1 }
                state.connections[index].localPort = state.nextHostPort
                state.nextHostPort = state.nextHostPort == .max ? Self.firstHostPort : state.nextHostPort + 1
                state.connections[index].peerPort = port
                state.connections[index].state = .connecting
                state.connections[index].owed = .request
                return true
            }
            state.connections[index].line.append(byte)
        }
        drop(index, resetting: false, &state)
        return false
    }

    /// Fills the guest's receive buffers: RSTs owed, each connection's control packets,
    /// then data from the host sockets within the guest's credit, a connection at a time.
    /// Returns the interrupt to raise.
    private func pumpReceive(_ state: inout State) -> (@Sendable () -> Void)? {
        guard !state.receive.broken, let queue = state.receive.queue else { return nil }
        var completed = false
        state.starved = false
        do throws(VirtqueueError) {
            while let (host, guest) = state.owedResets.first {
                guard try send(VsockHeader(sourceCID: Self.hostCID, destinationCID: Self.guestCID, sourcePort: host,
                                           destinationPort: guest, operation: .reset), in: queue, &state) else { break }
                state.owedResets.removeFirst()
                completed = true
            }
            var index = 0
            while index < state.connections.count && !state.starved {
                let before = state.connections.count
                completed = try sendOwed(index, in: queue, &state) || completed
                if state.connections.count < before { continue }
                completed = try sendData(index, in: queue, &state) || completed
                index += 1
            }
        } catch {
            state.receive.broken = true
            return ServedQueue.failure(state.receive.interrupt, error)
        }
        guard completed, queue.shouldInterrupt() else { return nil }
        return ServedQueue.notifier(state.receive.interrupt)
    }

    private func header(for connection: VsockConnection, _ operation: VsockHeader.Operation, length: UInt32 = 0,
                        flags: UInt32 = 0) -> VsockHeader {
        VsockHeader(sourceCID: Self.hostCID, destinationCID: Self.guestCID, sourcePort: connection.localPort,
                    destinationPort: connection.peerPort, operation: operation, length: length, flags: flags,
                    bufferAllocation: Self.bufferAllocation, forwardCount: connection.forwarded)
    }

    /// Sends a connection's control packets, in protocol order; a RST ends the connection.
    private func sendOwed(_ index: Int, in queue: Virtqueue, _ state: inout State) throws(VirtqueueError) -> Bool {
        // A credit update the guest asked for waits for the RESPONSE, which waits for the connect.
        guard state.connections[index].state != .hostConnecting else { return false }
        var sent = false
        let order: [(VsockConnection.Owed, VsockHeader.Operation)] = [
            (.request, .request), (.response, .response), (.creditUpdate, .creditUpdate), (.reset, .reset),
        ]
        for (flag, operation) in order where state.connections[index].owed.contains(flag) {
            if flag == .reset && !state.connections[index].pendingToHost.isEmpty { break }
            guard try send(header(for: state.connections[index], operation), in: queue, &state) else { return sent }
            sent = true
            state.connections[index].owed.remove(flag)
            state.connections[index].announcedForward = state.connections[index].forwarded
            if flag == .reset {
                drop(index, resetting: false, &state)
                return true
            }
        }
        return sent
    }

    /// Moves what the host socket holds into the guest's buffers as RW packets, within the
    /// guest's credit; the host's end of stream becomes a SHUTDOWN.
    private func sendData(_ index: Int, in queue: Virtqueue, _ state: inout State) throws(VirtqueueError) -> Bool {
        var sent = false
        while state.connections[index].state == .established, state.connections[index].hostReadable,
              !state.connections[index].hostFinished, state.connections[index].peerCredit > 0 {
            // A look first, so that a socket with nothing to say takes no chain.
            var byte: UInt8 = 0
            let peeked = recv(state.connections[index].fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if peeked < 0 && (errno == EAGAIN || errno == EINTR) {
                state.connections[index].hostReadable = false
                return sent
            }
            guard let chain = try queue.next() else {
                state.starved = true
                return sent
            }
            let writable = try queue.writableBuffers(of: chain)
            guard writable.count > VsockHeader.size else {
                queue.complete(chain, written: 0)
                continue
            }
            let room = min(writable.count - VsockHeader.size, Int(state.connections[index].peerCredit))
            var vectors = writable.slices(from: VsockHeader.size, length: room).map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
            let count = vectors.withUnsafeMutableBufferPointer { pointer -> Int in
                var message = msghdr()
                message.msg_iov = pointer.baseAddress
                message.msg_iovlen = pointer.count
                return recvmsg(state.connections[index].fd, &message, Int32(MSG_DONTWAIT))
            }
            var packet: VsockHeader
            if count > 0 {
                packet = header(for: state.connections[index], .readWrite, length: UInt32(count))
                state.connections[index].sentToGuest &+= UInt32(count)
            } else if count < 0 && (errno == EAGAIN || errno == EINTR) {
                // Taken by nobody else, so not expected: the chain goes back as a credit update.
                state.connections[index].hostReadable = false
                packet = header(for: state.connections[index], .creditUpdate)
            } else {
                // The host shut its write side (or closed): it sends no more, and may still read.
                state.connections[index].hostFinished = true
                packet = header(for: state.connections[index], .shutdown, flags: VsockHeader.shutdownSend)
            }
            writable.write(packet.bytes)
            queue.complete(chain, written: UInt32(VsockHeader.size + max(count, 0)))
            state.connections[index].announcedForward = state.connections[index].forwarded
            sent = true
        }
        return sent
    }

    /// Writes one header-only packet into the next receive chain. False: no chain.
    private func send(_ packet: VsockHeader, in queue: Virtqueue, _ state: inout State) throws(VirtqueueError) -> Bool {
        guard let chain = try queue.next() else {
            state.starved = true
            return false
        }
        let writable = try queue.writableBuffers(of: chain)
        queue.complete(chain, written: UInt32(writable.write(packet.bytes)))
        return true
    }
}

extension VirtioVsock {
    /// The queues' broken flags, the next host port to give a host client, and the RSTs
    /// owed to the guest. Not the connections: their streams live in host sockets, so
    /// only a device without any is snapshotted (`isIdle`); nor the host side, which is
    /// the run's.
    public func saveState(into writer: inout StateWriter) {
        state.withLock { state in
            writer.put(state.receive.broken)
            writer.put(state.transmit.broken)
            writer.put(state.nextHostPort)
            writer.put(UInt32(state.owedResets.count))
            for (host, guest) in state.owedResets {
                writer.put(host)
                writer.put(guest)
            }
        }
    }

    /// The event loop looks again afterwards: the owed RSTs go out once the guest has buffers.
    public func restoreState(from reader: inout StateReader) throws(StateError) {
        let receiveBroken = try reader.bool("vsock receive queue")
        let transmitBroken = try reader.bool("vsock transmit queue")
        let nextHostPort = try reader.get(UInt32.self, "vsock next host port")
        guard nextHostPort >= Self.firstHostPort else { throw .invalid(what: "vsock next host port") }
        let count = Int(try reader.get(UInt32.self, "vsock owed resets"))
        guard count <= Self.maximumOwedResets else { throw .invalid(what: "vsock owed resets") }
        var owedResets: [(UInt32, UInt32)] = []
        for _ in 0..<count {
            owedResets.append((try reader.get(UInt32.self, "vsock owed reset"), try reader.get(UInt32.self, "vsock owed reset")))
        }
        state.withLock { state in
            state.receive.broken = receiveBroken
            state.transmit.broken = transmitBroken
            state.nextHostPort = nextHostPort
            state.owedResets = owedResets
        }
        wake()
    }
}
