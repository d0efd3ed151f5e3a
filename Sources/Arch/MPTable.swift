import Memory

/// The Intel MultiProcessor Specification 1.4 tables: how a kernel without ACPI finds
/// its CPUs, the IOAPIC and the interrupt wiring. A floating pointer at 0x9fc00 (the
/// last KiB of base memory, where Linux looks) points at the configuration table after it.
public enum MPTable {
    public static let localAPICVersion: UInt8 = 0x14
    public static let ioAPICVersion: UInt8 = 0x11
    static let floatingPointerSize = 16
    static let headerSize = 44
    static let processorEntrySize = 20
    static let shortEntrySize = 8
    /// ISA interrupts 0–15 go to the IOAPIC pins of the same number, as KVM routes them.
    static let isaInterrupts = 16

    /// The IOAPIC's ID follows the CPUs' APIC IDs.
    public static func ioAPICID(cpus: Int) -> UInt8 { UInt8(cpus) }

    /// The bytes to place at `base` for `cpus` processors (APIC IDs 0..<cpus, CPU 0 boots).
    public static func bytes(cpus: Int, at base: GuestAddress = MemoryMap.mpTable) -> [UInt8] {
        precondition(cpus >= 1 && cpus < 255, "APIC IDs are 8-bit and 255 is broadcast")
        var table = [UInt8]()
        for cpu in 0..<cpus {
            var entry = [UInt8](repeating: 0, count: processorEntrySize)
            entry[0] = 0 // processor
            entry[1] = UInt8(cpu)
            entry[2] = localAPICVersion
            entry[3] = cpu == 0 ? 0x3 : 0x1 // enabled, bootstrap processor
            entry.storeLittleEndian(UInt32(0x600), at: 4) // family 6
            entry.storeLittleEndian(UInt32(0x201), at: 8) // FPU, APIC
            table += entry
        }
        table += [1, 0] + Array("ISA   ".utf8) // bus 0: ISA
        var ioapic: [UInt8] = [2, ioAPICID(cpus: cpus), ioAPICVersion, 1, 0, 0, 0, 0]
        ioapic.storeLittleEndian(UInt32(MemoryMap.ioapic.rawValue), at: 4)
        table += ioapic
        for irq in 0..<isaInterrupts {
            // I/O interrupt: INT, bus-default polarity and trigger, ISA irq → IOAPIC pin irq.
            table += [3, 0, 0, 0, 0, UInt8(irq), ioAPICID(cpus: cpus), UInt8(irq)]
        }
        // Local interrupts on every LAPIC: LINT0 ExtINT (the PIC), LINT1 NMI.
        table += [4, 3, 0, 0, 0, 0, 0xff, 0]
        table += [4, 1, 0, 0, 0, 0, 0xff, 1]

        var header = [UInt8](repeating: 0, count: headerSize)
        header.replaceSubrange(0..<4, with: Array("PCMP".utf8))
        header.storeLittleEndian(UInt16(headerSize + table.count), at: 4)
        header[6] = 4 // specification 1.4
        header.replaceSubrange(8..<16, with: Array("MICROVM ".utf8))
        header.replaceSubrange(16..<28, with: Array("MICROVM     ".utf8))
        header.storeLittleEndian(UInt16(cpus + 2 + isaInterrupts + 2), at: 34)
        header.storeLittleEndian(UInt32(MemoryMap.lapic.rawValue), at: 36)
        var configuration = header + table
        configuration[7] = checksum(configuration)

        var pointer = [UInt8](repeating: 0, count: floatingPointerSize)
        pointer.replaceSubrange(0..<4, with: Array("_MP_".utf8))
        pointer.storeLittleEndian(UInt32(base.rawValue) + UInt32(floatingPointerSize), at: 4)
        pointer[8] = 1 // length in 16-byte paragraphs
        pointer[9] = 4
        pointer[10] = checksum(pointer)
        return pointer + configuration
    }

    /// The byte that makes all bytes sum to zero.
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }
}
