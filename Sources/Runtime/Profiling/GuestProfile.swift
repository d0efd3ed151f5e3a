/// A finished profile: samples per function, kernel and user code apart, as a flat table
/// and in the folded-stack format flame-graph tools read.
public struct GuestProfile: Sendable, Equatable {
    public enum Mode: String, Sendable {
        case kernel
        case user
    }

    public struct Row: Sendable, Equatable {
        public var name: String
        public var mode: Mode
        public var samples: Int
    }

    /// The row for kernel-mode samples outside the symbol table.
    public static let unknownKernel = "[kernel, not in the symbol table]"
    /// The row for samples taken at CPL 3; user programs are not symbolized.
    public static let userCode = "[user]"

    public var rate: Int
    public var vcpus: Int
    /// The longest vCPU's sampled time.
    public var seconds: Double
    /// Most samples first.
    public var rows: [Row]
    /// Ticks that passed while a vCPU thread was away from the guest, not sampled.
    public var missed: Int
    /// Time spent reading registers for the samples, all vCPUs together.
    public var costNanoseconds: UInt64

    public var samples: Int { rows.reduce(0) { $0 + $1.samples } }

    public func samples(in mode: Mode) -> Int {
        rows.filter { $0.mode == mode }.reduce(0) { $0 + $1.samples }
    }

    /// The header and the `limit` busiest functions (all when nil).
    public func flat(limit: Int? = nil) -> String {
        let total = samples
        var text = "microvm guest profile: \(total) samples at \(rate) Hz on \(vcpus) vCPU\(vcpus == 1 ? "" : "s") over "
            + "\(Self.decimal(seconds * 100)) s; kernel \(Self.percent(samples(in: .kernel), of: total)), "
            + "user \(Self.percent(samples(in: .user), of: total))\n"
        text += "reading the registers took \(Self.decimal(total == 0 ? 0 : Double(costNanoseconds) / Double(total) / 10)) µs "
            + "per sample; \(missed) ticks missed\n"
        text += "samples  percent  function\n"
        for row in rows.prefix(limit ?? rows.count) {
            let count = String(row.samples)
            let share = Self.percent(row.samples, of: total)
            text += String(repeating: " ", count: max(0, 7 - count.count)) + count + "  "
                + String(repeating: " ", count: max(0, 7 - share.count)) + share + "  " + row.name + "\n"
        }
        return text
    }

    /// One line per function: `mode;function count`.
    public var folded: String {
        rows.map { "\($0.mode.rawValue);\($0.name) \($0.samples)\n" }.joined()
    }

    static func percent(_ part: Int, of total: Int) -> String {
        decimal(total == 0 ? 0 : Double(part) * 10_000 / Double(total)) + "%"
    }

    /// `hundredths` / 100 with two decimals, without Foundation's formatting.
    static func decimal(_ hundredths: Double) -> String {
        let value = Int(hundredths.rounded())
        let fraction = String(value % 100)
        return "\(value / 100)." + String(repeating: "0", count: 2 - fraction.count) + fraction
    }
}
