import Glibc

/// CLOCK_MONOTONIC, for rate limits and the event loop's timers: unmoved by changes to
/// the wall clock.
public enum MonotonicClock {
    public static let nanoseconds: @Sendable () -> UInt64 = {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
