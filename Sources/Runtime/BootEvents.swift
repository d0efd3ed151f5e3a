import Devices
import Glibc
import Synchronization

/// Timestamps of the moments that make up a VM's start-up, measured from a start
/// the caller chooses (the process's exec, for the command line).
public final class BootEvents: Sendable {
    public struct Times: Sendable {
        /// /dev/kvm open, the VM, its interrupt controller and PIT created.
        public var kvm: Double?
        /// Guest RAM mapped and registered.
        public var memory: Double?
        /// The devices on their buses.
        public var devices: Double?
        /// The kernel, initrd, command line and boot tables in guest memory.
        public var kernel: Double?
        /// The vCPUs created and set up.
        public var vcpus: Double?
        public var built: Double?
        /// The boot vCPU's thread started; from here to `firstRun` it installs its system-call filter.
        public var thread: Double?
        public var firstRun: Double?
        public var firstOutput: Double?
        public var marker: Double?
        public var exited: Double?
    }

    /// The initrd's line that says the guest's userland started.
    public static let guestInitMarker = "microvm-guest: init started"

    private let start: Double
    private let marker: [UInt8]
    /// Knuth–Morris–Pratt fallback: after a mismatch at i+1, the longest prefix that is still matched.
    private let fallback: [Int]
    private let times = Mutex(Times())
    private let exitCounts = Mutex(ExitCounts())
    /// How much of `marker` the output seen so far ends with.
    private let matched = Mutex(0)

    /// Runs once, on the vCPU thread that produced the first console output.
    private let onFirstOutput: (@Sendable () -> Void)?

    /// `start` in seconds on CLOCK_MONOTONIC; now by default. `marker` is the console
    /// output whose first appearance is timed (none: not watched). `onFirstOutput` runs
    /// when the guest first writes to its console, on the vCPU thread that wrote.
    public init(start: Double = BootEvents.now(), marker: String? = nil, onFirstOutput: (@Sendable () -> Void)? = nil) {
        self.start = start
        self.onFirstOutput = onFirstOutput
        let bytes = Array((marker ?? "").utf8)
        self.marker = bytes
        var fallback = [Int](repeating: 0, count: bytes.count)
        var length = 0
        for index in bytes.indices.dropFirst() {
            while length > 0 && bytes[index] != bytes[length] { length = fallback[length - 1] }
            if bytes[index] == bytes[length] { length += 1 }
            fallback[index] = length
        }
        self.fallback = fallback
    }

    public static func now() -> Double {
        Double(MonotonicClock.nanoseconds()) / 1e9
    }

    public var recorded: Times { times.withLock { $0 } }

    /// The exits to userspace of every vCPU whose loop has ended, by reason.
    public var exits: ExitCounts { exitCounts.withLock { $0 } }

    func add(_ counts: ExitCounts) {
        exitCounts.withLock { $0 = $0 + counts }
    }

    /// The start on CLOCK_MONOTONIC (so a caller can relate it to its own exec time),
    /// each event in milliseconds after it, the start-up steps one by one (`phases_ms`,
    /// each the time it was reached), and the exits to userspace by reason.
    public var json: String {
        let times = recorded
        func milliseconds(_ value: Double?) -> String {
            guard let value else { return "null" }
            return String(Double(Int((value * 1e6).rounded())) / 1e3)
        }
        return "{\"start_monotonic\":\(start),\"built_ms\":\(milliseconds(times.built)),"
            + "\"first_run_ms\":\(milliseconds(times.firstRun)),\"first_output_ms\":\(milliseconds(times.firstOutput)),"
            + "\"marker_ms\":\(milliseconds(times.marker)),\"exit_ms\":\(milliseconds(times.exited)),"
            + "\"phases_ms\":{\"kvm\":\(milliseconds(times.kvm)),\"memory\":\(milliseconds(times.memory)),"
            + "\"devices\":\(milliseconds(times.devices)),\"kernel\":\(milliseconds(times.kernel)),"
            + "\"vcpus\":\(milliseconds(times.vcpus)),\"built\":\(milliseconds(times.built)),"
            + "\"thread\":\(milliseconds(times.thread)),\"first_run\":\(milliseconds(times.firstRun))},\"exits\":\(exits.json)}"
    }

    /// A start-up step ended (`\.kvm`, `\.memory`, …, in the order `MicroVM` takes them).
    func reached(_ step: WritableKeyPath<Times, Double?> & Sendable) {
        record(step)
    }

    func built() { record(\.built) }
    func firstRun() { record(\.firstRun) }
    func firstOutput() {
        if record(\.firstOutput) { onFirstOutput?() }
    }
    func exited() { record(\.exited) }

    /// Watches console output for the marker; a no-op when there is none or it was seen.
    func observe(_ bytes: UnsafeRawBufferPointer) {
        guard !marker.isEmpty else { return }
        let found = matched.withLock { matched -> Bool in
            guard matched < marker.count else { return false }
            for byte in bytes {
                while matched > 0 && byte != marker[matched] { matched = fallback[matched - 1] }
                if byte == marker[matched] { matched += 1 }
                if matched == marker.count { return true }
            }
            return false
        }
        if found { record(\.marker) }
    }

    /// Records the event's time the first time it happens; returns whether this was that time.
    @discardableResult
    private func record(_ key: WritableKeyPath<Times, Double?> & Sendable) -> Bool {
        let elapsed = Self.now() - start
        return times.withLock { times in
            guard times[keyPath: key] == nil else { return false }
            times[keyPath: key] = elapsed
            return true
        }
    }
}
