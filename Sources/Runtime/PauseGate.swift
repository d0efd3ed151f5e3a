import Glibc
import Synchronization

/// Where vCPU threads wait while the VM is paused. `pause()` closes the gate; each vCPU,
/// once out of the guest with no port or MMIO access left half done, parks in `park`
/// until `open()` or a stop; `waitUntilParked` lets the pausing thread know when all are
/// still, so that their state and the devices' can be read.
final class PauseGate: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// Read on every vCPU exit, so without the lock; changed under it, so that a parked
    /// thread cannot miss the change before it waits.
    private let closed = Atomic<Bool>(false)
    private var released = false
    private var parked = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    var isClosed: Bool { closed.load(ordering: .acquiring) }

    func close() {
        locked { closed.store(true, ordering: .releasing) }
    }

    func open() {
        locked {
            closed.store(false, ordering: .releasing)
            pthread_cond_broadcast(condition)
        }
    }

    /// Lets every parked thread go for good: the VM is stopping.
    func release() {
        locked {
            released = true
            pthread_cond_broadcast(condition)
        }
    }

    /// Called by a vCPU thread that is out of the guest: waits while the gate is closed.
    func park() {
        locked {
            guard isClosed && !released else { return }
            parked += 1
            pthread_cond_broadcast(condition)
            while isClosed && !released { pthread_cond_wait(condition, mutex) }
            parked -= 1
        }
    }

    /// Waits until `count` threads are parked; false if the VM stopped first or
    /// `timeoutMilliseconds` passed (a vCPU stuck in a blocking console write).
    func waitUntilParked(_ count: Int, timeoutMilliseconds: Int) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += timeoutMilliseconds / 1000
        deadline.tv_nsec += (timeoutMilliseconds % 1000) * 1_000_000
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        return locked {
            while parked < count && !released {
                if pthread_cond_timedwait(condition, mutex, &deadline) == ETIMEDOUT { break }
            }
            return parked >= count && !released
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}
