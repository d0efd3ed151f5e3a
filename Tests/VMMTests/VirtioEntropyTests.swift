@testable import Devices
@testable import Memory
import Synchronization
import Testing

/// A clock the test moves, and the retries the device asked for.
final class ManualClock: Sendable {
    private let now = Mutex<UInt64>(1_000_000_000)
    private let retries = Mutex<[(UInt64, @Sendable () -> Void)]>([])

    var read: @Sendable () -> UInt64 { { [self] in now.withLock { $0 } } }
    func advance(nanoseconds: UInt64) { now.withLock { $0 += nanoseconds } }
    var retry: @Sendable (UInt64, @escaping @Sendable () -> Void) -> Void { { [self] delay, action in retries.withLock { $0.append((delay, action)) } } }
    var pendingDelays: [UInt64] { retries.withLock { $0.map(\.0) } }

    /// Runs the retries asked for so far.
    func fireRetries() {
        let due = retries.withLock { retries in
            defer { retries = [] }
            return retries.map(\.1)
        }
        for action in due { action() }
    }
}

/// virtio-rng against a simulated driver: chains filled from the source, within the
/// rate limit, and chains left waiting (never completed empty) when the bucket is dry.
@Suite struct VirtioEntropyTests {
    var driver: SimulatedDriver
    let clock = ManualClock()
    let interrupt = RecordingInterrupt()
    let device: VirtioEntropy

    init() throws {
        driver = try SimulatedDriver(size: 16)
        let clock = self.clock
        device = VirtioEntropy(limit: .init(bytesPerSecond: 8192, burst: 4096), clock: clock.read,
                               source: { buffer in
                                   for index in buffer.indices { buffer[index] = 0xa5 }
                                   return true
                               }, retry: clock.retry)
        device.activate(queues: [try driver.queue()], features: 0, interrupt: interrupt)
    }

    @Test mutating func fillsAChainFromTheSource() throws {
        try driver.post([(0x10000, 64, true), (0x20000, 32, true)])
        device.queueNotified(0)
        #expect(try driver.usedIndex() == 1)
        #expect(try driver.usedElement(0).length == 96)
        #expect(try driver.memory.read(at: 0x10000, count: 64) == [UInt8](repeating: 0xa5, count: 64))
        #expect(try driver.memory.read(at: 0x20000, count: 32) == [UInt8](repeating: 0xa5, count: 32))
        #expect(interrupt.recorded == ["used"])
    }

    @Test mutating func aDryBucketLeavesChainsWaitingUntilTheRefill() throws {
        try driver.post([(0x10000, 4096, true)])
        device.queueNotified(0)
        #expect(try driver.usedElement(0).length == 4096)
        try driver.post([(0x20000, 1024, true)])
        device.queueNotified(0)
        #expect(try driver.usedIndex() == 1, "a chain answered with no bytes stalls Linux's driver")
        // 4 KiB at 8 KiB/s: half a second.
        #expect(clock.pendingDelays == [500_000_000])
        device.queueNotified(0)
        #expect(clock.pendingDelays.count == 1, "one retry at a time")
        clock.advance(nanoseconds: 125_000_000)
        clock.fireRetries()
        #expect(try driver.usedIndex() == 2)
        #expect(try driver.usedElement(1).length == 1024)
    }

    @Test mutating func aLargeChainGetsAtMostTheBurst() throws {
        try driver.post([(0x10000, 65536, true)])
        device.queueNotified(0)
        #expect(try driver.usedElement(0).length == 4096)
    }

    @Test mutating func aReadableBufferBreaksTheQueue() throws {
        try driver.post([(0x10000, 16, false)])
        device.queueNotified(0)
        #expect(interrupt.recorded.first?.hasPrefix("reset:") == true)
        try driver.post([(0x20000, 16, true)])
        device.queueNotified(0)
        #expect(try driver.usedIndex() == 0)
    }

    @Test mutating func aResetDeviceIgnoresAStaleRetry() throws {
        try driver.post([(0x10000, 4096, true)])
        try driver.post([(0x20000, 16, true)])
        device.queueNotified(0)
        device.reset()
        clock.advance(nanoseconds: 1_000_000_000)
        clock.fireRetries()
        #expect(try driver.usedIndex() == 1)
    }
}
