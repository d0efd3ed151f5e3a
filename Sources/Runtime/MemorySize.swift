import Glibc
import Memory

/// Guest memory sizes as users write them: `256M`, `1G`, `65536K`, `512` (MiB).
public enum MemorySize {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case unreadable(String)
        case tooSmall(String, minimum: UInt64)
        case tooLarge(String, hostRAM: UInt64)
        case unaligned(String)

        public var description: String {
            switch self {
            case .unreadable(let text):
                return "memory size '\(text)' is not a number with an optional K, M or G suffix (e.g. 256M)"
            case .tooSmall(let text, let minimum):
                return "memory size '\(text)' is too small: a guest needs at least \(minimum >> 20) MiB"
            case .tooLarge(let text, let hostRAM):
                return "memory size '\(text)' is more than this host's \(MemorySize.format(hostRAM)) of RAM"
            case .unaligned(let text):
                return "memory size '\(text)' is not a multiple of 4 KiB"
            }
        }
    }

    /// Parses and checks `text` against the minimum guest size and the host's RAM.
    public static func parse(_ text: String, hostRAM: UInt64 = MemorySize.hostRAM()) throws(MemorySize.Error) -> UInt64 {
        guard let bytes = bytes(in: text) else { throw .unreadable(text) }
        guard bytes >= VMConfiguration.minimumMemorySize else { throw .tooSmall(text, minimum: VMConfiguration.minimumMemorySize) }
        guard bytes <= hostRAM else { throw .tooLarge(text, hostRAM: hostRAM) }
        guard bytes % MemoryMap.pageSize == 0 else { throw .unaligned(text) }
        return bytes
    }

    /// The bytes a size such as `256M` names (a plain number is MiB), nil when it is no
    /// size; one too large for 64 bits is `UInt64.max`, which any bound refuses.
    public static func bytes(in text: String) -> UInt64? {
        var digits = Substring(text.trimmingSpaces())
        var shift: UInt64 = 20
        for suffix in ["iB", "B", "b"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits = digits.dropLast(suffix.count)
            break
        }
        switch digits.last {
        case "K", "k": shift = 10; digits = digits.dropLast()
        case "M", "m": shift = 20; digits = digits.dropLast()
        case "G", "g": shift = 30; digits = digits.dropLast()
        case "T", "t": shift = 40; digits = digits.dropLast()
        default: break
        }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit) else { return nil }
        guard let value = UInt64(digits) else { return .max }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? .max : bytes
    }

    /// Physical RAM of this host.
    public static func hostRAM() -> UInt64 {
        UInt64(max(0, sysconf(Int32(_SC_PHYS_PAGES)))) * UInt64(max(0, sysconf(Int32(_SC_PAGESIZE))))
    }

    static func format(_ bytes: UInt64) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1 ? "\((gib * 10).rounded() / 10) GiB" : "\(bytes >> 20) MiB"
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

private extension String {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}
