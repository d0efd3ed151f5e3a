import Memory

/// `struct hvm_start_info` (xen/include/public/arch-x86/hvm/start_info.h), version 1,
/// with its module list (the initrd) and memory map laid out after it.
public struct PVHStartInfo: Sendable {
    static let magic: UInt32 = 0x336e_c578
    static let size = 0x38
    static let moduleListOffset = 0x40
    static let moduleEntrySize = 0x20
    static let memoryMapOffset = 0x60
    static let memoryMapEntrySize = 0x18

    public var commandLine: GuestAddress?
    public var initrd: (address: GuestAddress, size: UInt64)?
    public var memoryMap: [E820Entry]
    /// The ACPI RSDP, when the VM has ACPI tables.
    public var rsdp: GuestAddress?

    public init(commandLine: GuestAddress?, initrd: (address: GuestAddress, size: UInt64)?, memoryMap: [E820Entry],
                rsdp: GuestAddress? = nil) {
        self.commandLine = commandLine
        self.initrd = initrd
        self.memoryMap = memoryMap
        self.rsdp = rsdp
    }

    /// The structure as it lies in guest memory when placed at `base`.
    public func bytes(at base: GuestAddress) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.memoryMapOffset + memoryMap.count * Self.memoryMapEntrySize)
        func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) { bytes.storeLittleEndian(value, at: offset) }
        put(Self.magic, 0)
        put(UInt32(1), 4)
        if let initrd {
            put(UInt32(1), 12)
            put(base.rawValue + UInt64(Self.moduleListOffset), 16)
            put(initrd.address.rawValue, Self.moduleListOffset)
            put(initrd.size, Self.moduleListOffset + 8)
        }
        put(commandLine?.rawValue ?? 0, 24)
        put(rsdp?.rawValue ?? 0, 32)
        put(base.rawValue + UInt64(Self.memoryMapOffset), 40)
        put(UInt32(memoryMap.count), 48)
        for (index, entry) in memoryMap.enumerated() {
            let offset = Self.memoryMapOffset + index * Self.memoryMapEntrySize
            put(entry.start, offset)
            put(entry.size, offset + 8)
            put(entry.kind.rawValue, offset + 16)
        }
        return bytes
    }
}
