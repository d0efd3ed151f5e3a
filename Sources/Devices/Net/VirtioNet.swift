import Glibc
import Memory
import Synchronization

/// virtio-net (virtio 1.x, section 5.1) with one queue pair: receiveq 0, transmitq 1.
/// Both run on the I/O thread, never on a vCPU's. Transmit (`pumpTransmit`) hands each
/// frame to the backend in place, and takes a chain only when the backend is ready for
/// it: a peer that stops reading leaves the guest's frames in its ring. Receive
/// (`pumpReceive`) reads one frame at a time into a buffer of its own and copies it into
/// the guest's buffers, so the host holds at most one frame per direction whatever the
/// guest does; a guest that posts no buffers leaves frames in the backend (passt's socket
/// or the tap's queue), which drops them.
///
/// A device built without a backend (a VM template's, bound per run) has its link down
/// and drops what the guest sends until `attach` brings the link up.
public final class VirtioNet: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 256
    /// The virtio-net header with VERSION_1: flags, gso_type, hdr_len, gso_size,
    /// csum_start, csum_offset, num_buffers.
    public static let headerLength = 12
    /// 64 KiB of IP with an Ethernet and a VLAN header: the largest frame a segmentation
    /// offload produces.
    public static let maximumFrameLength = 65536 + 18
    /// Frames one `pumpReceive` or `pumpTransmit` call moves at most, so that the I/O
    /// thread serves its other work.
    public static let framesPerPump = 64
    public static let receiveQueue = 0
    public static let transmitQueue = 1

    public enum Feature {
        public static let checksum: UInt64 = 1 << 0
        public static let guestChecksum: UInt64 = 1 << 1
        public static let mac: UInt64 = 1 << 5
        public static let guestTSO4: UInt64 = 1 << 7
        public static let guestTSO6: UInt64 = 1 << 8
        public static let hostTSO4: UInt64 = 1 << 11
        public static let hostTSO6: UInt64 = 1 << 12
        public static let mergeableReceiveBuffers: UInt64 = 1 << 15
        public static let status: UInt64 = 1 << 16
        /// What a backend that carries the header can take and give.
        public static let offloads = checksum | guestChecksum | guestTSO4 | guestTSO6 | hostTSO4 | hostTSO6
    }

    /// What the I/O thread should wait for before calling `pumpReceive` again.
    public enum ReceiveState: Equatable, Sendable {
        /// The backend's descriptor to become readable.
        case backend
        /// The guest to post receive buffers; `wake` is called when it does.
        case guest
        /// Nothing: the backend is gone.
        case closed
    }

    /// Counters, for the log and the tests.
    public struct Statistics: Equatable, Sendable {
        public var received = 0
        public var transmitted = 0
        /// Frames that fit no buffer the guest offered, or that the backend refused.
        public var receiveDropped = 0
        public var transmitDropped = 0
    }

    /// A receive chain taken from the ring and not yet filled: a frame needs all of its
    /// chains before any is written. At most the queue's size of them.
    struct HeldChain {
        let chain: DescriptorChain
        let buffers: GuestBuffers
    }

    struct Receive {
        var served = ServedQueue()
        var held: [HeldChain] = []
        var mergeable = false
        /// Bytes of the frame (header included) waiting in `frame`, if one waits.
        var pending: Int?
        var waitingForGuest = false
        var closed = false
        /// What the last `pumpReceive` said to wait for.
        var waitingFor = ReceiveState.guest
        var statistics = Statistics()
    }

    struct Transmit {
        var served = ServedQueue()
        /// The driver notified the queue, or a pump stopped at its budget: pump again.
        var notified = false
        /// The backend was not ready for the next frame: pump again when it polls writable.
        var waitingForBackend = false
        var transmitted = 0
        var dropped = 0
    }

    /// The backend, and the driver's side while the device is active: the features it
    /// accepted (the backend's offloads) and its interrupt.
    struct Link {
        var backend: NetworkBackend?
        var negotiated: UInt64?
        weak var interrupt: VirtioInterrupt?
        /// A backend came while the device was not active: its activation tells the driver.
        var unannounced = false
    }

    private let receive = Mutex(Receive())
    private let transmit = Mutex(Transmit())
    private let link = Mutex(Link())
    /// The frame being received: the header, then the frame. Only `receive`'s holder touches it.
    private nonisolated(unsafe) let frame: UnsafeMutableRawBufferPointer
    /// Whether the backend's frames carry the virtio-net header: fixed with the features offered.
    private let carriesHeader: Bool
    private let macAddress: [UInt8]
    private let wake: @Sendable () -> Void
    private let backendClosed: @Sendable () -> Void

    public var deviceType: UInt32 { 1 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize, Self.queueSize] }
    public var deviceFeatures: UInt64 {
        Feature.mac | Feature.status | Feature.mergeableReceiveBuffers | (carriesHeader ? Feature.offloads : 0)
    }

    /// A device whose backend comes later, through `attach`. `carriesHeader` says whether
    /// that backend's frames will carry the virtio-net header (a tap's do, passt's do not):
    /// the offloads offered depend on it, and the driver fixes its features before the
    /// backend comes. `wake` is called, on any thread, when the device has work for the
    /// I/O thread (the guest posted receive buffers or notified the transmit queue, or a
    /// backend came): the I/O thread should call `serveReady` with `woken` set.
    /// `backendClosed` is called once when the backend goes away.
    public init(carriesHeader: Bool, mac: [UInt8], backendClosed: @escaping @Sendable () -> Void = {},
                wake: @escaping @Sendable () -> Void) {
        precondition(mac.count == 6, "a MAC address has 6 bytes")
        self.carriesHeader = carriesHeader
        macAddress = mac
        self.backendClosed = backendClosed
        self.wake = wake
        frame = .allocate(byteCount: Self.headerLength + Self.maximumFrameLength, alignment: 16)
    }

    /// A device with its backend from the start. A restored device whose guest saw no
    /// backend is built without one and given it with `attach`, which tells the guest.
    public convenience init(backend: NetworkBackend, mac: [UInt8], backendClosed: @escaping @Sendable () -> Void = {},
                            wake: @escaping @Sendable () -> Void) {
        self.init(carriesHeader: backend.carriesHeader, mac: mac, backendClosed: backendClosed, wake: wake)
        link.withLock { $0.backend = backend }
    }

    /// Binds `backend`, from any thread: the link goes up, and a configuration change
    /// tells the driver (at once if it is active, else when it activates), on which Linux
    /// reads the link status. Refused if the device has a backend, or if the backend's
    /// frames differ from the device's in carrying the header.
    public func attach(_ backend: NetworkBackend) throws(AttachError) {
        guard backend.carriesHeader == carriesHeader else { throw .headerMismatch(deviceCarriesHeader: carriesHeader) }
        let interrupt = try link.withLock { link throws(AttachError) -> VirtioInterrupt? in
            guard link.backend == nil else { throw .attached(device: "network device") }
            link.backend = backend
            guard let negotiated = link.negotiated else {
                link.unannounced = true
                return nil
            }
            backend.acceptOffloads(negotiated)
            return link.interrupt
        }
        interrupt?.configurationChanged()
        // The I/O thread polls the backend from its next turn on.
        wake()
    }

    /// Whether a snapshot loses nothing in flight: no frame waits in the device for
    /// receive buffers, and the backend holds no part of a frame the guest sent.
    public var isIdle: Bool {
        guard link.withLock({ $0.backend != nil }) else { return true }
        return receive.withLock { $0.pending == nil } && transmit.withLock { !$0.waitingForBackend }
    }

    deinit {
        frame.deallocate()
    }

    public var statistics: Statistics {
        var result = receive.withLock { $0.statistics }
        (result.transmitted, result.transmitDropped) = transmit.withLock { ($0.transmitted, $0.dropped) }
        return result
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        // mac, then status: VIRTIO_NET_S_LINK_UP while there is a backend.
        let configuration = macAddress + [link.withLock { $0.backend != nil } ? 1 : 0, 0]
        for index in 0..<data.count {
            data[index] = offset >= 0 && offset + index < configuration.count ? configuration[offset + index] : 0
        }
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        let announce = link.withLock { link in
            link.backend?.acceptOffloads(features)
            link.negotiated = features
            link.interrupt = interrupt
            defer { link.unannounced = false }
            return link.unannounced
        }
        if announce { interrupt.configurationChanged() }
        transmit.withLock { state in
            state.served = ServedQueue(queue: queues[Self.transmitQueue], interrupt: interrupt)
            state.notified = false
            state.waitingForBackend = false
        }
        receive.withLock { state in
            state.served = ServedQueue(queue: queues[Self.receiveQueue], interrupt: interrupt)
            state.held = []
            state.mergeable = features & Feature.mergeableReceiveBuffers != 0
            state.waitingForGuest = false
        }
        wake()
    }

    public func queueNotified(_ index: Int) {
        if index == Self.receiveQueue {
            let wake = receive.withLock { state in
                defer { state.waitingForGuest = false }
                return state.waitingForGuest
            }
            if wake { self.wake() }
            return
        }
        transmit.withLock { $0.notified = true }
        wake()
    }

    /// Sends the frames the driver made available, at most `framesPerPump` of them, while
    /// the backend is ready for them; without a backend they are dropped, as an unplugged
    /// wire drops them.
    public func pumpTransmit() {
        let backend = link.withLock { $0.backend }
        let skip = carriesHeader ? 0 : Self.headerLength
        let (signal, again) = transmit.withLock { state -> ((@Sendable () -> Void)?, Bool) in
            var budget = Self.framesPerPump
            var blocked = false
            var sent = 0
            var dropped = 0
            let signal = state.served.serveAvailable(while: {
                guard budget > 0 else { return false }
                guard backend?.readyToSend() ?? true else {
                    blocked = true
                    return false
                }
                budget -= 1
                return true
            }) { chain, queue throws(VirtqueueError) in
                let readable = try queue.readableBuffers(of: chain)
                guard let backend, readable.count > Self.headerLength, readable.count - Self.headerLength <= Self.maximumFrameLength else {
                    dropped += 1
                    return 0
                }
                if backend.send(readable.slices(from: skip).map { UnsafeRawBufferPointer($0) }) { sent += 1 } else { dropped += 1 }
                return 0
            }
            state.transmitted += sent
            state.dropped += dropped
            state.waitingForBackend = blocked
            state.notified = budget == 0
            return (signal, budget == 0)
        }
        signal?()
        if again { wake() }
    }

    public func reset() {
        link.withLock { link in
            link.negotiated = nil
            link.interrupt = nil
        }
        transmit.withLock { state in
            state.served = ServedQueue()
            state.notified = false
            state.waitingForBackend = false
        }
        receive.withLock { state in
            state.served = ServedQueue()
            state.held = []
            state.pending = nil
            state.waitingForGuest = false
        }
    }

    /// Moves frames from the backend into the guest's receive buffers, at most
    /// `framesPerPump` of them; says what to wait for before the next call.
    public func pumpReceive() -> ReceiveState {
        let backend = link.withLock { $0.backend }
        let (state, signal, closedNow) = receive.withLock { state -> (ReceiveState, (@Sendable () -> Void)?, Bool) in
            let wasClosed = state.closed
            let (result, signal) = pump(&state, from: backend)
            state.waitingFor = result
            return (result, signal, state.closed && !wasClosed)
        }
        signal?()
        if closedNow { backendClosed() }
        return state
    }

    /// Without a backend, waits for one: `pollRequests` asks for its descriptor once it comes.
    private func pump(_ state: inout Receive, from backend: NetworkBackend?) -> (ReceiveState, (@Sendable () -> Void)?) {
        guard !state.closed else { return (.closed, nil) }
        guard state.served.queue != nil, !state.served.broken else {
            state.waitingForGuest = true
            return (.guest, nil)
        }
        guard let backend else { return (.backend, nil) }
        var delivered = false
        var result = ReceiveState.backend
        for _ in 0..<Self.framesPerPump {
            if state.pending == nil {
                let body = carriesHeader ? frame : UnsafeMutableRawBufferPointer(rebasing: frame[Self.headerLength...])
                guard let length = backend.receive(into: body) else {
                    state.closed = true
                    result = .closed
                    break
                }
                guard length > 0 else { break }
                if !carriesHeader {
                    UnsafeMutableRawBufferPointer(rebasing: frame[..<Self.headerLength]).initializeMemory(as: UInt8.self, repeating: 0)
                }
                state.pending = length + (carriesHeader ? 0 : Self.headerLength)
            }
            do throws(VirtqueueError) {
                guard try deliverPending(&state) else {
                    state.waitingForGuest = true
                    result = .guest
                    break
                }
                delivered = true
            } catch {
                state.served.broken = true
                state.held = []
                return (.guest, ServedQueue.failure(state.served.interrupt, error))
            }
        }
        guard delivered, let queue = state.served.queue, queue.shouldInterrupt() else { return (result, nil) }
        return (result, ServedQueue.notifier(state.served.interrupt))
    }

    /// Writes the pending frame into as many held chains as it needs (one without
    /// MRG_RXBUF), taking chains from the ring until they hold it. False: the guest has
    /// not posted enough buffers yet. A frame no buffers could hold is dropped.
    private func deliverPending(_ state: inout Receive) throws(VirtqueueError) -> Bool {
        guard let length = state.pending, let queue = state.served.queue else { return false }
        var capacity = state.held.reduce(0) { $0 + $1.buffers.count }
        while capacity < length && (state.mergeable || state.held.isEmpty) && state.held.count < Int(queue.size) {
            guard let chain = try queue.next() else { return false }
            let writable = try queue.writableBuffers(of: chain)
            state.held.append(HeldChain(chain: chain, buffers: writable))
            capacity += writable.count
        }
        guard !state.held.isEmpty else { return false }
        guard capacity >= length else {
            state.statistics.receiveDropped += 1
            state.pending = nil
            return true
        }
        var used = 0
        var covered = 0
        while covered < length {
            covered += state.held[used].buffers.count
            used += 1
        }
        frame.storeBytes(of: UInt16(used).littleEndian, toByteOffset: 10, as: UInt16.self)
        var offset = 0
        for held in state.held[..<used] {
            let count = min(held.buffers.count, length - offset)
            var copied = 0
            for slice in held.buffers.buffers where copied < count {
                let part = min(slice.count, count - copied)
                slice.baseAddress!.copyMemory(from: frame.baseAddress! + offset + copied, byteCount: part)
                copied += part
            }
            queue.complete(held.chain, written: UInt32(count))
            offset += count
        }
        state.held.removeFirst(used)
        state.pending = nil
        state.statistics.received += 1
        return true
    }
}

extension VirtioNet: PolledDevice {
    public func pollRequests() -> [pollfd] {
        guard let descriptor = link.withLock({ $0.backend?.descriptor }) else { return [] }
        let events = (receive.withLock { $0.waitingFor } == .backend ? POLLIN : 0)
            | (transmit.withLock { $0.waitingForBackend } ? POLLOUT : 0)
        return events == 0 ? [] : [pollfd(fd: descriptor, events: Int16(events), revents: 0)]
    }

    public func serveReady(_ ready: [Int32: Int16], woken: Bool) {
        let events = link.withLock { $0.backend?.descriptor }.map { Int32(ready[$0] ?? 0) } ?? 0
        let (notified, blocked) = transmit.withLock { ($0.notified, $0.waitingForBackend) }
        if blocked ? events & (POLLOUT | POLLERR | POLLHUP) != 0 : notified { pumpTransmit() }
        let receiveDue = switch receive.withLock({ $0.waitingFor }) {
        case .backend: events & (POLLIN | POLLERR | POLLHUP) != 0
        case .guest: woken
        case .closed: false
        }
        if receiveDue { _ = pumpReceive() }
    }
}

extension VirtioNet {
    /// Whether frames carry the header (the features offered depend on it), the queues'
    /// broken flags and the receive chains taken from the ring but not yet used (by head):
    /// the restored device takes them back. A frame waiting for buffers is not kept
    /// (networks drop frames; `isIdle` says whether one waits), nor the backend, which is
    /// the run's: a restored device gets its own.
    public func saveState(into writer: inout StateWriter) {
        writer.put(carriesHeader)
        writer.put(transmit.withLock { $0.served.broken })
        receive.withLock { state in
            writer.put(state.served.broken)
            writer.put(UInt32(state.held.count))
            for held in state.held { writer.put(held.chain.head) }
        }
    }

    /// The transmit ring is looked at once: a notification the saved VM's I/O thread had
    /// not yet taken is not lost.
    public func restoreState(from reader: inout StateReader) throws(StateError) {
        guard try reader.bool("net header kind") == carriesHeader else {
            throw .invalid(what: "net header kind (the device is built for frames \(carriesHeader ? "with" : "without") the virtio-net header)")
        }
        let transmitBroken = try reader.bool("net transmit queue")
        let receiveBroken = try reader.bool("net receive queue")
        let count = Int(try reader.get(UInt32.self, "net held chains"))
        guard count <= Int(Self.queueSize) else { throw .invalid(what: "net held chains") }
        var heads: [UInt16] = []
        for _ in 0..<count { heads.append(try reader.get(UInt16.self, "net held chain")) }
        transmit.withLock { state in
            state.served.broken = transmitBroken
            state.notified = true
        }
        try receive.withLock { state throws(StateError) in
            state.served.broken = receiveBroken
            state.held = []
            guard let queue = state.served.queue else { return }
            for head in heads {
                do throws(VirtqueueError) {
                    let chain = try queue.chain(from: head)
                    state.held.append(HeldChain(chain: chain, buffers: try queue.buffers(of: chain).writable))
                } catch {
                    throw .invalid(what: "net held chain \(head)")
                }
            }
        }
        wake()
    }
}
