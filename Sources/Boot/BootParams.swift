import Memory

/// The zero page (`struct boot_params`) a 64-bit boot protocol kernel reads at entry.
public struct BootParams: Sendable {
    enum Offset {
        static let acpiRSDPAddress = 0x070
        static let extRamdiskImage = 0x0c0
        static let extRamdiskSize = 0x0c4
        static let extCommandLinePointer = 0x0c8
        static let e820Entries = 0x1e8
        static let e820Table = 0x2d0
    }

    public static let size = 4096
    /// `E820_MAX_ENTRIES_ZEROPAGE`.
    public static let maxE820Entries = 128

    public private(set) var bytes: [UInt8]

    /// A zero page carrying `header` (a bzImage's own), or a minimal header for kernels
    /// loaded from ELF that still take the 64-bit entry.
    public init(header: [UInt8]? = nil) {
        bytes = [UInt8](repeating: 0, count: Self.size)
        if let header {
            bytes.replaceSubrange(SetupHeader.Offset.setupSectors..<(SetupHeader.Offset.setupSectors + header.count), with: header)
        } else {
            set(SetupHeader.bootFlag, at: SetupHeader.Offset.bootFlag)
            set(SetupHeader.magic, at: SetupHeader.Offset.magic)
            set(UInt16(0x020f), at: SetupHeader.Offset.version)
            set(UInt32(0x0100_0000), at: SetupHeader.Offset.kernelAlignment)
        }
        // 0xff: a boot loader without an assigned ID.
        set(UInt8(0xff), at: SetupHeader.Offset.typeOfLoader)
    }

    public mutating func setCommandLine(at address: GuestAddress) {
        set(UInt32(truncatingIfNeeded: address.rawValue), at: SetupHeader.Offset.commandLinePointer)
        set(UInt32(truncatingIfNeeded: address.rawValue >> 32), at: Offset.extCommandLinePointer)
    }

    public mutating func setInitrd(at address: GuestAddress, size: UInt64) {
        set(UInt32(truncatingIfNeeded: address.rawValue), at: SetupHeader.Offset.ramdiskImage)
        set(UInt32(truncatingIfNeeded: address.rawValue >> 32), at: Offset.extRamdiskImage)
        set(UInt32(truncatingIfNeeded: size), at: SetupHeader.Offset.ramdiskSize)
        set(UInt32(truncatingIfNeeded: size >> 32), at: Offset.extRamdiskSize)
    }

    /// Where the ACPI RSDP is, so that the kernel need not scan the BIOS area for it.
    public mutating func setACPIRootPointer(_ address: GuestAddress) {
        set(address.rawValue, at: Offset.acpiRSDPAddress)
    }

    public mutating func setE820(_ entries: [E820Entry]) {
        let count = min(entries.count, Self.maxE820Entries)
        set(UInt8(count), at: Offset.e820Entries)
        for (index, entry) in entries.prefix(count).enumerated() {
            let base = Offset.e820Table + index * 20
            set(entry.start, at: base)
            set(entry.size, at: base + 8)
            set(entry.kind.rawValue, at: base + 16)
        }
    }

    /// A little-endian field, for tests and for reading back what was set.
    public func value<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        bytes.littleEndian(T.self, at: offset)!
    }

    mutating func set<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        bytes.storeLittleEndian(value, at: offset)
    }
}
