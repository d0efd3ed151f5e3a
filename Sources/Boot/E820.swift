import Memory

/// The BIOS memory map handed to the guest (zero page e820 table, PVH memmap).
public struct E820Entry: Equatable, Sendable {
    public enum Kind: UInt32, Sendable {
        case ram = 1
        case reserved = 2
    }

    public var start: UInt64
    public var size: UInt64
    public var kind: Kind

    public init(start: UInt64, size: UInt64, kind: Kind) {
        self.start = start
        self.size = size
        self.kind = kind
    }

    /// The map for `memory`: low RAM up to the MP table, the reserved BIOS area, RAM
    /// from 1 MiB, and RAM above 4 GiB where the memory continues past the MMIO gap.
    public static func map(for memory: GuestMemory) -> [E820Entry] {
        var entries: [E820Entry] = []
        for region in memory.regions {
            var start = region.start.rawValue
            let end = region.end
            if start < MemoryMap.reservedLow.lowerBound {
                let lowEnd = min(end, MemoryMap.reservedLow.lowerBound)
                entries.append(E820Entry(start: start, size: lowEnd - start, kind: .ram))
                start = lowEnd
            }
            if start < MemoryMap.reservedLow.upperBound + 1 && end > start {
                let reservedEnd = MemoryMap.reservedLow.upperBound + 1
                entries.append(E820Entry(start: start, size: reservedEnd - start, kind: .reserved))
                start = reservedEnd
            }
            if end > start {
                entries.append(E820Entry(start: start, size: end - start, kind: .ram))
            }
        }
        return entries
    }
}
