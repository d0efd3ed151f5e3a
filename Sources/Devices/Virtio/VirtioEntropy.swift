import CLinux
import Glibc
import Memory
import Synchronization

/// virtio-rng (virtio 1.x, section 5.4): one request queue whose device-writable chains
/// the device fills from `source`. A token bucket limits the bytes a guest can draw:
/// when it is empty the device leaves the chains in the ring and asks `retry` to call
/// `refill()` once enough tokens have accrued. (Completing a chain with no bytes is no
/// answer: Linux 6.1's driver then waits for ever.) One chain takes at most
/// `maximumChainBytes`, so one notification costs the host a bounded amount of work.
public final class VirtioEntropy: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 64
    public static let maximumChainBytes = 64 * 1024

    /// Bytes per second, and how many may be drawn at once after a pause.
    public struct RateLimit: Equatable, Sendable {
        public var bytesPerSecond: UInt64
        public var burst: UInt64

        public init(bytesPerSecond: UInt64, burst: UInt64) {
            self.bytesPerSecond = max(bytesPerSecond, 1)
            self.burst = max(burst, 1)
        }

        /// 1 MiB/s with 64 KiB at once: far beyond what seeding a kernel needs, and a
        /// guest draining it costs the host a few getrandom calls per millisecond.
        public static let standard = RateLimit(bytesPerSecond: 1 << 20, burst: 64 << 10)
    }

    struct State {
        var served = ServedQueue()
        var tokens: UInt64
        var lastRefill: UInt64
        var retryPending = false
    }

    private let state: Mutex<State>
    private let limit: RateLimit
    private let clock: @Sendable () -> UInt64
    private let source: @Sendable (UnsafeMutableRawBufferPointer) -> Bool
    private let retry: @Sendable (_ nanoseconds: UInt64, _ refill: @escaping @Sendable () -> Void) -> Void

    public var deviceType: UInt32 { 4 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize] }
    public var deviceFeatures: UInt64 { 0 }

    /// `clock` gives monotonic nanoseconds; `source` fills a buffer with random bytes
    /// (false if it cannot); `retry` arranges for its second argument to be called after
    /// the given delay, from any thread.
    public init(limit: RateLimit = .standard, clock: @escaping @Sendable () -> UInt64 = MonotonicClock.nanoseconds,
                source: @escaping @Sendable (UnsafeMutableRawBufferPointer) -> Bool = VirtioEntropy.systemRandom,
                retry: @escaping @Sendable (_ nanoseconds: UInt64, _ refill: @escaping @Sendable () -> Void) -> Void) {
        self.limit = limit
        self.clock = clock
        self.source = source
        self.retry = retry
        state = Mutex(State(tokens: limit.burst, lastRefill: clock()))
    }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices { data[index] = 0 }
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        state.withLock { $0.served = ServedQueue(queue: queues[0], interrupt: interrupt) }
    }

    public func queueNotified(_ index: Int) {
        serve()
    }

    /// Serves the chains that waited for tokens.
    func refill() {
        state.withLock { $0.retryPending = false }
        serve()
    }

    public func reset() {
        state.withLock { $0.served = ServedQueue() }
    }

    private func serve() {
        let (signal, delay) = state.withLock { state -> ((@Sendable () -> Void)?, UInt64?) in
            let now = clock()
            let accrued = (now &- state.lastRefill).multipliedFullWidth(by: limit.bytesPerSecond)
            let earned = accrued.high > 0 ? UInt64.max : accrued.low / 1_000_000_000
            if earned > 0 {
                state.tokens = earned >= limit.burst - state.tokens ? limit.burst : state.tokens + earned
                state.lastRefill = now
            }
            var tokens = state.tokens
            let source = self.source
            let signal = state.served.serveAvailable(while: { tokens > 0 }) { chain, queue throws(VirtqueueError) in
                let writable = try queue.writableBuffers(of: chain)
                var left = Int(min(UInt64(Self.maximumChainBytes), tokens))
                var written = 0
                for slice in writable.buffers where left > 0 {
                    let part = UnsafeMutableRawBufferPointer(rebasing: slice[..<min(slice.count, left)])
                    guard source(part) else { break }
                    written += part.count
                    left -= part.count
                }
                tokens -= UInt64(written)
                return UInt32(written)
            }
            state.tokens = tokens
            guard tokens == 0, state.served.queue != nil, !state.served.broken, !state.retryPending else { return (signal, nil) }
            state.retryPending = true
            // Wait for a useful amount, not for the first byte: fewer, fuller answers.
            let wanted = min(limit.burst, 4096)
            return (signal, (wanted * 1_000_000_000 + limit.bytesPerSecond - 1) / limit.bytesPerSecond)
        }
        signal?()
        if let delay { retry(delay) { [weak self] in self?.refill() } }
    }

    public static let systemRandom: @Sendable (UnsafeMutableRawBufferPointer) -> Bool = { buffer in
        var filled = 0
        while filled < buffer.count {
            let count = getrandom(buffer.baseAddress! + filled, buffer.count - filled, 0)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            filled += count
        }
        return true
    }
}

extension VirtioEntropy {
    public func saveState(into writer: inout StateWriter) {
        writer.put(state.withLock { $0.served.broken })
    }

    public func restoreState(from reader: inout StateReader) throws(StateError) {
        let broken = try reader.bool("entropy queue")
        state.withLock { state in
            state.served.broken = broken
            state.retryPending = false
        }
        // Chains the guest posted while the bucket was empty wait for a notification that already came.
        serve()
    }
}
