import Boot
import Synchronization

/// Samples each vCPU's instruction pointer at a fixed rate for a whole run and names the
/// function each sample lies in. Every vCPU thread has a POSIX timer that sends it the
/// kick signal; KVM_RUN returns, and the first exit at or after each tick reads RIP
/// (KVM_GET_REGS) and, below the kernel half, CS (KVM_GET_SREGS). Reading registers only on
/// a tick costs less than KVM_CAP_SYNC_REGS, which copies them out on every exit. Samples are counted per
/// symbol as they are taken, so memory is bounded by the symbol table, not by the run's
/// length or by what the guest does.
public final class GuestProfiler: Sendable {
    public let rate: Int
    public let symbols: SymbolTable
    private let totals: Mutex<Tally>

    /// Per-symbol counts, then one for kernel code outside the table and one for user code.
    struct Tally {
        var counts: [Int]
        var missed = 0
        var costNanoseconds: UInt64 = 0
        var vcpus = 0
        var nanoseconds: UInt64 = 0

        init(symbols: Int) {
            counts = [Int](repeating: 0, count: symbols + 2)
        }

        static func += (left: inout Tally, right: Tally) {
            for index in left.counts.indices { left.counts[index] += right.counts[index] }
            left.missed += right.missed
            left.costNanoseconds += right.costNanoseconds
            left.vcpus += right.vcpus
            left.nanoseconds = max(left.nanoseconds, right.nanoseconds)
        }
    }

    public static let defaultRate = 1000
    public static let rates = 1...10_000

    public init(rate: Int = defaultRate, symbols: SymbolTable) {
        self.rate = rate
        self.symbols = symbols
        totals = Mutex(Tally(symbols: symbols.count))
    }

    var period: UInt64 { 1_000_000_000 / UInt64(max(rate, 1)) }

    package func sampler() -> VCPUSampler {
        VCPUSampler(profiler: self)
    }

    func add(_ tally: Tally) {
        totals.withLock { $0 += tally }
    }

    /// What the vCPUs whose loops have ended sampled.
    public var profile: GuestProfile {
        let tally = totals.withLock { $0 }
        var rows: [GuestProfile.Row] = []
        for (index, count) in tally.counts.enumerated() where count > 0 {
            switch index {
            case symbols.count: rows.append(.init(name: GuestProfile.unknownKernel, mode: .kernel, samples: count))
            case symbols.count + 1: rows.append(.init(name: GuestProfile.userCode, mode: .user, samples: count))
            default: rows.append(.init(name: symbols.names[index], mode: .kernel, samples: count))
            }
        }
        rows.sort { $0.samples != $1.samples ? $0.samples > $1.samples : $0.name < $1.name }
        return GuestProfile(rate: rate, vcpus: tally.vcpus, seconds: Double(tally.nanoseconds) / 1e9, rows: rows,
                            missed: tally.missed, costNanoseconds: tally.costNanoseconds)
    }
}
