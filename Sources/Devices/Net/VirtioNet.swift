import Glibc
import Memory
import Synchronization

/// virtio-net (virtio 1.x, section 5.1) with one queue pair: receiveq 0, transmitq 1.
/// Transmit runs on the notifying vCPU's thread and hands each frame to the backend in
/// place. Receive runs on the I/O thread (`pumpReceive`): it reads one frame at a time
/// into a buffer of its own and copies it into the guest's buffers, so the host holds at
/// most one frame per device whatever the guest does; a guest that posts no buffers
/// leaves frames in the backend (passt's socket or the tap's queue), which drops them.
public final class VirtioNet: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 256
    /// The virtio-net header with VERSION_1: flags, gso_type, hdr_len, gso_size,
    /// csum_start, csum_offset, num_buffers.
    public static let headerLength = 12
    /// 64 KiB of IP with an Ethernet and a VLAN header: the largest frame a segmentation
    /// offload produces.
    public static let maximumFrameLength = 65536 + 18
    /// Frames one `pumpReceive` call moves at most, so that the I/O thread serves its other work.
    public static let framesPerPump = 64
    static let receiveQueue = 0
    static let transmitQueue = 1

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
        /// The guest to post receive buffers; `receiveReady` is called when it does.
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

    private let receive = Mutex(Receive())
    /// Only vCPU threads take it; they may block in the backend while holding it.
    private let transmit = Mutex(ServedQueue())
    private let transmitStatistics = Mutex(Statistics())
    /// The frame being received: the header, then the frame. Only `receive`'s holder touches it.
    private nonisolated(unsafe) let frame: UnsafeMutableRawBufferPointer
    private let backend: NetworkBackend
    private let macAddress: [UInt8]
    private let receiveReady: @Sendable () -> Void
    private let backendClosed: @Sendable () -> Void

    public var deviceType: UInt32 { 1 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize, Self.queueSize] }
    public var deviceFeatures: UInt64 {
        Feature.mac | Feature.status | Feature.mergeableReceiveBuffers | (backend.carriesHeader ? Feature.offloads : 0)
    }

    /// `receiveReady` is called, on any thread, when receive can go on after waiting for
    /// the guest: the I/O thread should call `pumpReceive`. `backendClosed` is called once
    /// when the backend goes away.
    public init(backend: NetworkBackend, mac: [UInt8], backendClosed: @escaping @Sendable () -> Void = {},
                receiveReady: @escaping @Sendable () -> Void) {
        precondition(mac.count == 6, "a MAC address has 6 bytes")
        self.backend = backend
        macAddress = mac
        self.backendClosed = backendClosed
        self.receiveReady = receiveReady
        frame = .allocate(byteCount: Self.headerLength + Self.maximumFrameLength, alignment: 16)
    }

    deinit {
        frame.deallocate()
    }

    public var statistics: Statistics {
        var result = receive.withLock { $0.statistics }
        let sent = transmitStatistics.withLock { $0 }
        result.transmitted = sent.transmitted
        result.transmitDropped = sent.transmitDropped
        return result
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        // mac, then status: VIRTIO_NET_S_LINK_UP.
        let configuration = macAddress + [1, 0]
        for index in 0..<data.count {
            data[index] = offset >= 0 && offset + index < configuration.count ? configuration[offset + index] : 0
        }
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        backend.acceptOffloads(features)
        transmit.withLock { $0 = ServedQueue(queue: queues[Self.transmitQueue], interrupt: interrupt) }
        receive.withLock { state in
            state.served = ServedQueue(queue: queues[Self.receiveQueue], interrupt: interrupt)
            state.held = []
            state.mergeable = features & Feature.mergeableReceiveBuffers != 0
            state.waitingForGuest = false
        }
        receiveReady()
    }

    public func queueNotified(_ index: Int) {
        if index == Self.receiveQueue {
            let wake = receive.withLock { state in
                defer { state.waitingForGuest = false }
                return state.waitingForGuest
            }
            if wake { receiveReady() }
            return
        }
        var sent = 0
        var dropped = 0
        let backend = self.backend
        transmit.withLock { served in
            served.serveAvailable { chain, queue throws(VirtqueueError) in
                let (readable, writable) = try queue.buffers(of: chain)
                guard writable.buffers.isEmpty else { throw .wrongDirection(head: chain.head, expected: "device-readable") }
                let skip = backend.carriesHeader ? 0 : Self.headerLength
                guard readable.count > Self.headerLength, readable.count - Self.headerLength <= Self.maximumFrameLength else {
                    dropped += 1
                    return 0
                }
                if backend.send(readable.slices(from: skip).map { UnsafeRawBufferPointer($0) }) { sent += 1 } else { dropped += 1 }
                return 0
            }
        }?()
        if sent > 0 || dropped > 0 {
            transmitStatistics.withLock { statistics in
                statistics.transmitted += sent
                statistics.transmitDropped += dropped
            }
        }
    }

    public func reset() {
        transmit.withLock { $0 = ServedQueue() }
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
        let (state, signal, closedNow) = receive.withLock { state -> (ReceiveState, (@Sendable () -> Void)?, Bool) in
            let wasClosed = state.closed
            let (result, signal) = pump(&state)
            state.waitingFor = result
            return (result, signal, state.closed && !wasClosed)
        }
        signal?()
        if closedNow { backendClosed() }
        return state
    }

    private func pump(_ state: inout Receive) -> (ReceiveState, (@Sendable () -> Void)?) {
        guard !state.closed else { return (.closed, nil) }
        guard state.served.queue != nil, !state.served.broken else {
            state.waitingForGuest = true
            return (.guest, nil)
        }
        var delivered = false
        var result = ReceiveState.backend
        for _ in 0..<Self.framesPerPump {
            if state.pending == nil {
                let body = backend.carriesHeader ? frame : UnsafeMutableRawBufferPointer(rebasing: frame[Self.headerLength...])
                guard let length = backend.receive(into: body) else {
                    state.closed = true
                    result = .closed
                    break
                }
                guard length > 0 else { break }
                if !backend.carriesHeader {
                    UnsafeMutableRawBufferPointer(rebasing: frame[..<Self.headerLength]).initializeMemory(as: UInt8.self, repeating: 0)
                }
                state.pending = length + (backend.carriesHeader ? 0 : Self.headerLength)
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
            let (readable, writable) = try queue.buffers(of: chain)
            guard readable.buffers.isEmpty else { throw .wrongDirection(head: chain.head, expected: "device-writable") }
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
        receive.withLock { $0.waitingFor } == .backend ? [pollfd(fd: backend.descriptor, events: Int16(POLLIN), revents: 0)] : []
    }

    public func serveReady(_ ready: [Int32: Int16], woken: Bool) {
        let due = switch receive.withLock({ $0.waitingFor }) {
        case .backend: ready[backend.descriptor] != nil
        case .guest: woken
        case .closed: false
        }
        if due { _ = pumpReceive() }
    }
}

extension VirtioNet {
    /// The queues' broken flags and the receive chains taken from the ring but not yet
    /// used (by head): the restored device takes them back. A frame waiting for buffers
    /// is not kept; networks drop frames.
    public func saveState(into writer: inout StateWriter) {
        writer.put(transmit.withLock { $0.broken })
        receive.withLock { state in
            writer.put(state.served.broken)
            writer.put(UInt32(state.held.count))
            for held in state.held { writer.put(held.chain.head) }
        }
    }

    public func restoreState(from reader: inout StateReader) throws(StateError) {
        let transmitBroken = try reader.bool("net transmit queue")
        let receiveBroken = try reader.bool("net receive queue")
        let count = Int(try reader.get(UInt32.self, "net held chains"))
        guard count <= Int(Self.queueSize) else { throw .invalid(what: "net held chains") }
        var heads: [UInt16] = []
        for _ in 0..<count { heads.append(try reader.get(UInt16.self, "net held chain")) }
        transmit.withLock { $0.broken = transmitBroken }
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
        receiveReady()
    }
}
