import CLinux
import Devices
import Glibc
import KVM

/// One vCPU's part of a `GuestProfiler`: the timer that kicks its thread, and the samples
/// that thread takes. Only that thread uses it.
package final class VCPUSampler: @unchecked Sendable {
    private let profiler: GuestProfiler
    private let period: UInt64
    private var timer: timer_t?
    private var tally: GuestProfiler.Tally
    private var started: UInt64 = 0
    private var deadline: UInt64 = 0

    init(profiler: GuestProfiler) {
        self.profiler = profiler
        period = profiler.period
        tally = GuestProfiler.Tally(symbols: profiler.symbols.count)
        tally.vcpus = 1
    }

    /// Arms the calling thread's timer; the thread must take the kick signal.
    package func start() throws(KVMError) {
        var created: timer_t?
        let result = clinux_thread_timer_start(KickSignal.number, Int(period), &created)
        guard result == 0 else { throw .systemCallFailed(call: "timer_create", errno: .init(rawValue: -result)) }
        timer = created
        begin(at: MonotonicClock.nanoseconds())
    }

    package func begin(at now: UInt64) {
        started = now
        deadline = now + period
    }

    /// Called on every exit: takes a sample when a tick has come since the last one.
    /// Ticks that passed while the thread was away (a blocking console write) are counted
    /// as missed, not sampled late.
    package func exitTaken<CPU: GuestCPU>(_ cpu: CPU, now: UInt64 = MonotonicClock.nanoseconds()) {
        guard now >= deadline else { return }
        let late = (now - deadline) / period
        tally.missed += Int(late)
        deadline += (late + 1) * period
        guard let rip = try? cpu.registers().rip, let user = try? Self.isUserCode(rip, cpu) else { return }
        let symbols = profiler.symbols
        let index = user ? symbols.count + 1 : symbols.index(of: rip) ?? symbols.count
        tally.counts[index] += 1
        tally.costNanoseconds += MonotonicClock.nanoseconds() &- now
    }

    /// Code in the upper half of the address space is the kernel's in every x86-64 system,
    /// which saves reading the segment registers (KVM_GET_SREGS) for most kernel samples;
    /// elsewhere the CPL in CS decides.
    private static func isUserCode<CPU: GuestCPU>(_ rip: UInt64, _ cpu: CPU) throws(KVMError) -> Bool {
        guard rip < 0xffff_8000_0000_0000 else { return false }
        return try cpu.specialRegisters().cs.selector & 3 == 3
    }

    /// Disarms the timer and hands the samples to the profiler.
    package func stop(now: UInt64 = MonotonicClock.nanoseconds()) {
        if let timer { timer_delete(timer) }
        timer = nil
        tally.nanoseconds = now &- started
        profiler.add(tally)
    }
}
