import Boot
import Memory
import X86

/// Register state at the kernel's entry, for either boot path, plus the GDT and
/// identity page tables it relies on.
public enum BootCPUState {
    /// Boot GDT selectors. The Linux 64-bit protocol wants __BOOT_CS = 0x10 and
    /// __BOOT_DS = 0x18; PVH wants a flat 32-bit code segment, which takes 0x08.
    public static let code32Selector: UInt16 = 0x08
    public static let code64Selector: UInt16 = 0x10
    public static let dataSelector: UInt16 = 0x18

    static let gdt: [UInt64] = [
        0,
        0x00cf_9a00_0000_ffff, // 0x08: code, 32-bit, flat
        0x00af_9a00_0000_ffff, // 0x10: code, 64-bit
        0x00cf_9200_0000_ffff, // 0x18: data, flat
    ]

    static let pml4 = MemoryMap.pageTables
    static let pdpt = GuestAddress(MemoryMap.pageTables.rawValue + 0x1000)
    static let pageDirectory = GuestAddress(MemoryMap.pageTables.rawValue + 0x2000)

    static let cr0ProtectionEnable: UInt64 = 1 << 0
    static let cr0ExtensionType: UInt64 = 1 << 4
    static let cr0Paging: UInt64 = 1 << 31
    static let cr4PAE: UInt64 = 1 << 5
    static let eferLME: UInt64 = 1 << 8
    static let eferLMA: UInt64 = 1 << 10

    /// Writes the GDT and, for the 64-bit path, page tables identity-mapping the first GiB.
    public static func writeTables(for entry: LoadedKernel.Entry, into memory: GuestMemory) throws(GuestMemoryError) {
        for (index, descriptor) in gdt.enumerated() {
            try memory.store(descriptor, at: GuestAddress(MemoryMap.bootGDT.rawValue + UInt64(index * 8)))
        }
        guard case .linux64 = entry else { return }
        try memory.zero(at: pml4, count: 0x3000)
        try memory.store(pdpt.rawValue | 0x3, at: pml4)
        try memory.store(pageDirectory.rawValue | 0x3, at: pdpt)
        for index in 0..<512 {
            // Present, writable, 2 MiB page.
            try memory.store(UInt64(index) << 21 | 0x83, at: GuestAddress(pageDirectory.rawValue + UInt64(index * 8)))
        }
    }

    static func segment(selector: UInt16, code: Bool, longMode: Bool) -> Segment {
        var segment = Segment()
        segment.base = 0
        segment.limit = 0xffff_ffff
        segment.selector = selector
        segment.type = code ? 0xb : 0x3
        segment.present = true
        segment.codeOrData = true
        segment.granularity = true
        segment.longMode = longMode
        segment.defaultSize32 = !longMode
        return segment
    }

    /// Adjusts the vCPU's reset-state special registers for `entry`.
    public static func specialRegisters(_ base: SpecialRegisters, for entry: LoadedKernel.Entry) -> SpecialRegisters {
        var sregs = base
        sregs.gdt.base = MemoryMap.bootGDT.rawValue
        sregs.gdt.limit = UInt16(gdt.count * 8 - 1)
        sregs.idt.base = 0
        sregs.idt.limit = 0
        let longMode: Bool
        if case .linux64 = entry { longMode = true } else { longMode = false }
        let code = segment(selector: longMode ? code64Selector : code32Selector, code: true, longMode: longMode)
        let data = segment(selector: dataSelector, code: false, longMode: false)
        sregs.cs = code
        sregs.ds = data
        sregs.es = data
        sregs.fs = data
        sregs.gs = data
        sregs.ss = data
        if longMode {
            sregs.cr3 = pml4.rawValue
            sregs.cr4 |= cr4PAE
            sregs.cr0 |= cr0ProtectionEnable | cr0Paging | cr0ExtensionType
            sregs.efer |= eferLME | eferLMA
        } else {
            sregs.cr0 = (sregs.cr0 | cr0ProtectionEnable | cr0ExtensionType) & ~cr0Paging
            sregs.cr4 = 0
            sregs.efer = 0
        }
        return sregs
    }

    /// General registers at entry: RSI = zero page (64-bit) or RBX = start info (PVH).
    public static func registers(for entry: LoadedKernel.Entry) -> Registers {
        var regs = Registers()
        regs.rflags = 0x2
        switch entry {
        case .linux64(let address):
            regs.rip = address.rawValue
            regs.rsi = MemoryMap.zeroPage.rawValue
            regs.rsp = MemoryMap.bootStackPointer.rawValue
            regs.rbp = MemoryMap.bootStackPointer.rawValue
        case .pvh(let address):
            regs.rip = address.rawValue
            regs.rbx = MemoryMap.pvhStartInfo.rawValue
        }
        return regs
    }

    /// x87 and SSE control words as after FINIT / reset, which Linux expects.
    public static func floatingPointState() -> FPUState {
        var fpu = FPUState()
        fpu.controlWord = 0x37f
        fpu.mxcsr = 0x1f80
        return fpu
    }

    /// MSRs a kernel expects cleared or set at entry.
    public static let msrs: [ModelSpecificRegister] = [
        .init(0x174, 0), .init(0x175, 0), .init(0x176, 0), // SYSENTER_CS/ESP/EIP
        .init(0xc000_0081, 0), .init(0xc000_0082, 0), .init(0xc000_0083, 0), .init(0xc000_0084, 0), // STAR, LSTAR, CSTAR, SFMASK
        .init(0xc000_0102, 0), // KERNEL_GS_BASE
        .init(0x1a0, 1), // MISC_ENABLE: fast strings
    ]

    /// LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, as a BIOS leaves them.
    public static func localAPIC(_ base: LocalAPICState) -> LocalAPICState {
        var state = base
        state[register: 0x350] = (state[register: 0x350] & ~0x700) | (0x7 << 8) // LVT LINT0: ExtINT
        state[register: 0x360] = (state[register: 0x360] & ~0x700) | (0x4 << 8) // LVT LINT1: NMI
        return state
    }
}
