import Devices
import Glibc
import KVM
import Synchronization

/// Device work that belongs to no vCPU, done on the event loop's thread: the polled
/// devices' host descriptors (network receive, vsock connections) and timers
/// (virtio-rng's refill). Devices ask for it from any thread through `wakeUp` and
/// `schedule`; the event loop polls `wake` with the devices' descriptors.
final class DeviceIO: Sendable {
    let wake: EventFD
    private let timers = Mutex<[(deadline: UInt64, action: @Sendable () -> Void)]>([])
    private let devices = Mutex<[PolledDevice]>([])
    /// Eventfds KVM signals for a guest's queue notifications (ioeventfd), each with what
    /// to tell the device.
    private let notifiers = Mutex<[(event: EventFD, notify: @Sendable () -> Void)]>([])

    init() throws(KVMError) {
        wake = try EventFD(nonBlocking: true)
    }

    /// Wakes the event loop to look at the devices again.
    func wakeUp() {
        wake.signal()
    }

    /// Runs `action` on the event loop's thread in `nanoseconds` or a little later.
    func schedule(after nanoseconds: UInt64, _ action: @escaping @Sendable () -> Void) {
        let deadline = MonotonicClock.nanoseconds() + nanoseconds
        timers.withLock { $0.append((deadline, action)) }
        wake.signal()
    }

    func add(_ device: PolledDevice) {
        devices.withLock { $0.append(device) }
    }

    /// Calls `notify` on the event loop's thread each time KVM signals `event`.
    func add(notifier event: EventFD, _ notify: @escaping @Sendable () -> Void) {
        notifiers.withLock { $0.append((event, notify)) }
    }

    /// What the loop should poll besides its own descriptors, and how long it may wait
    /// (milliseconds, -1 for ever) before a timer is due.
    func pollSet() -> (descriptors: [pollfd], timeout: Int32) {
        let descriptors = [pollfd(fd: wake.fd.rawValue, events: Int16(POLLIN), revents: 0)]
            + notifiers.withLock { $0 }.map { pollfd(fd: $0.event.fd.rawValue, events: Int16(POLLIN), revents: 0) }
            + devices.withLock { $0 }.flatMap { $0.pollRequests() }
        let now = MonotonicClock.nanoseconds()
        let timeout = timers.withLock { timers -> Int32 in
            guard let next = timers.map(\.deadline).min() else { return -1 }
            return next <= now ? 0 : Int32(min((next - now + 999_999) / 1_000_000, 60_000))
        }
        return (descriptors, timeout)
    }

    /// After a poll of `pollSet`'s descriptors: runs the timers that are due and lets each
    /// device serve what was ready.
    func serve(_ polled: ArraySlice<pollfd>) {
        var ready: [Int32: Int16] = [:]
        for descriptor in polled where descriptor.revents != 0 { ready[descriptor.fd, default: 0] |= descriptor.revents }
        for notifier in notifiers.withLock({ $0 }) where ready[notifier.event.fd.rawValue] != nil {
            _ = Self.drain(notifier.event)
            notifier.notify()
        }
        let now = MonotonicClock.nanoseconds()
        let due = timers.withLock { timers in
            var due: [@Sendable () -> Void] = []
            timers.removeAll { timer in
                guard timer.deadline <= now else { return false }
                due.append(timer.action)
                return true
            }
            return due
        }
        for action in due { action() }
        // Read last, so that the wake-ups the notifications and timers just asked for are
        // served in this turn rather than costing another.
        let woken = Self.drain(wake)
        for device in devices.withLock({ $0 }) { device.serveReady(ready, woken: woken) }
    }

    /// Resets a nonblocking eventfd; whether it had been signalled.
    private static func drain(_ event: EventFD) -> Bool {
        var count: UInt64 = 0
        return read(event.fd.rawValue, &count, 8) == 8
    }
}
