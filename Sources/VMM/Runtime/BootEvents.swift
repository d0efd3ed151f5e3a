import Glibc
import Synchronization

/// Timestamps of the moments that make up a VM's start-up, measured from a start
/// the caller chooses (the process's exec, for the command line).
public final class BootEvents: Sendable {
    public struct Times: Sendable {
        public var built: Double?
        public var firstRun: Double?
        public var firstOutput: Double?
        public var exited: Double?
    }

    private let start: Double
    private let times = Mutex(Times())

    /// `start` in seconds on CLOCK_MONOTONIC; now by default.
    public init(start: Double = BootEvents.now()) {
        self.start = start
    }

    public static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    public var recorded: Times { times.withLock { $0 } }

    /// The start on CLOCK_MONOTONIC (so a caller can relate it to its own exec time)
    /// and each event in milliseconds after it.
    public var json: String {
        let times = recorded
        func milliseconds(_ value: Double?) -> String {
            guard let value else { return "null" }
            return String(Double(Int((value * 1e6).rounded())) / 1e3)
        }
        return "{\"start_monotonic\":\(start),\"built_ms\":\(milliseconds(times.built)),"
            + "\"first_run_ms\":\(milliseconds(times.firstRun)),\"first_output_ms\":\(milliseconds(times.firstOutput)),"
            + "\"exit_ms\":\(milliseconds(times.exited))}"
    }

    func built() { record(\.built) }
    func firstRun() { record(\.firstRun) }
    func firstOutput() { record(\.firstOutput) }
    func exited() { record(\.exited) }

    private func record(_ key: WritableKeyPath<Times, Double?> & Sendable) {
        let elapsed = Self.now() - start
        times.withLock { times in
            if times[keyPath: key] == nil { times[keyPath: key] = elapsed }
        }
    }
}
