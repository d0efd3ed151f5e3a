/// Maps address ranges to devices: the port I/O space or the MMIO space.
/// Ranges may not overlap. Accesses nobody claims read as all ones and are dropped.
public final class Bus: @unchecked Sendable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case overlap(base: UInt64, size: UInt64, existing: UInt64)
        case emptyRange(base: UInt64)

        public var description: String {
            switch self {
            case .overlap(let base, let size, let existing):
                return "bus range 0x\(String(base, radix: 16)) (+0x\(String(size, radix: 16))) overlaps the device at 0x\(String(existing, radix: 16))"
            case .emptyRange(let base):
                return "bus range at 0x\(String(base, radix: 16)) is empty"
            }
        }
    }

    struct Entry {
        let base: UInt64
        let size: UInt64
        let device: BusDevice
    }

    /// Sorted by base. Written only while the VM is built, before any vCPU runs.
    private var entries: [Entry] = []

    public init() {}

    public func insert(_ device: BusDevice, base: UInt64, size: UInt64) throws(Bus.Error) {
        guard size > 0 else { throw .emptyRange(base: base) }
        for entry in entries where base < entry.base &+ entry.size && entry.base < base &+ size {
            throw .overlap(base: base, size: size, existing: entry.base)
        }
        entries.append(Entry(base: base, size: size, device: device))
        entries.sort { $0.base < $1.base }
    }

    /// The device whose range holds `address`, and the offset into that range.
    func resolve(_ address: UInt64) -> (device: BusDevice, offset: UInt64)? {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            let entry = entries[middle]
            if address < entry.base {
                high = middle
            } else if address - entry.base >= entry.size {
                low = middle + 1
            } else {
                return (entry.device, address - entry.base)
            }
        }
        return nil
    }

    /// Dispatches a read; returns false (and fills `data` with 0xff) when no device claims it.
    @discardableResult
    public func read(_ address: UInt64, into data: UnsafeMutableRawBufferPointer) -> Bool {
        guard let (device, offset) = resolve(address) else {
            data.initializeMemory(as: UInt8.self, repeating: 0xff)
            return false
        }
        device.read(offset: offset, into: data)
        return true
    }

    /// Dispatches a write; returns false when no device claims it.
    @discardableResult
    public func write(_ address: UInt64, data: UnsafeRawBufferPointer) -> Bool {
        guard let (device, offset) = resolve(address) else { return false }
        device.write(offset: offset, data: data)
        return true
    }
}
