/// Where things live in guest physical memory (design.md, "Guest physical memory map").
public enum MemoryMap {
    public static let pageSize: UInt64 = 0x1000
    public static let bootGDT: GuestAddress = 0x500
    public static let pvhStartInfo: GuestAddress = 0x6000
    public static let zeroPage: GuestAddress = 0x7000
    public static let bootStackPointer: GuestAddress = 0x8ff0
    public static let pageTables: GuestAddress = 0x9000
    public static let mpTable: GuestAddress = 0x9fc00
    /// The VM generation ID's 16 bytes, which the DSDT's VMGenID device points at: in the
    /// reserved area's VGA window (0xa0000–0xbffff), past the largest MP table (254 CPUs end
    /// at 0xa10b4) and below 0xc0000, where Linux starts scanning for option ROMs.
    public static let generationID: GuestAddress = 0xbf000
    /// The ACPI tables, RSDP first: the BIOS area a kernel without EFI scans for it.
    public static let acpiTables: GuestAddress = 0xe0000
    /// From the MP table to the end of the BIOS area: reserved in the e820 map. It holds the
    /// MP table, the generation ID and the ACPI tables.
    public static let reservedLow: ClosedRange<UInt64> = 0x9fc00...0xfffff
    public static let commandLine: GuestAddress = 0x20000
    public static let commandLineMaxSize = 2048
    public static let kernelLoad: GuestAddress = 0x100000
    /// Start of the 32-bit MMIO gap: virtio-mmio devices, then IOAPIC and LAPIC.
    public static let mmioGapStart: GuestAddress = 0xd000_0000
    public static let mmioGapEnd: GuestAddress = 0x1_0000_0000
    public static let virtioMMIOBase: GuestAddress = 0xd000_0000
    public static let virtioMMIOSlotSize: UInt64 = 0x1000
    /// One interrupt per virtio-mmio slot, in slot order: the ISA lines no legacy device
    /// of ours or of a PC uses (not the timer, keyboard, cascade, COM ports, RTC or FPU).
    public static let virtioIRQs: [UInt32] = [5, 6, 7, 9, 10, 11, 12, 14, 15]
    /// The Generic Event Device's interrupt, which tells an ACPI guest that its generation
    /// ID changed: every ISA line is taken, so the first IOAPIC-only pin.
    public static let generationIDInterrupt: UInt32 = 16
    /// The exit-status register (docs/exit-status.md): the guest's /init writes its
    /// command's status here, 32 bits, before it reboots.
    public static let exitStatusRegister: GuestAddress = 0xd100_0000
    /// A container guest's `oci-init` writes 1 here once it reads its control lines.
    public static let streamsReadyRegister: GuestAddress = 0xd100_0004
    public static let ioapic: GuestAddress = 0xfec0_0000
    public static let lapic: GuestAddress = 0xfee0_0000
    /// KVM's three-page TSS and its identity-map page, just below the IOAPIC.
    public static let kvmTSS: GuestAddress = 0xfffb_d000
    public static let kvmIdentityMap: GuestAddress = 0xfffb_c000

    /// The RAM regions for `size` bytes: below the 32-bit gap, and the rest from 4 GiB.
    public static func ramRegions(size: UInt64) -> [(start: GuestAddress, size: UInt64)] {
        let low = min(size, mmioGapStart.rawValue)
        var regions = [(start: GuestAddress(0), size: low)]
        if size > low {
            regions.append((start: mmioGapEnd, size: size - low))
        }
        return regions
    }
}
