/// Segment, descriptor-table, control registers and EFER of an x86_64 CPU.
public struct SpecialRegisters: Equatable, Sendable {
    public var cs = Segment(), ds = Segment(), es = Segment(), fs = Segment(), gs = Segment(), ss = Segment()
    public var tr = Segment(), ldt = Segment()
    public var gdt = DescriptorTable(), idt = DescriptorTable()
    public var cr0: UInt64 = 0, cr2: UInt64 = 0, cr3: UInt64 = 0, cr4: UInt64 = 0, cr8: UInt64 = 0
    public var efer: UInt64 = 0
    public var apicBase: UInt64 = 0
    /// Pending external interrupts, one bit per vector (256 bits).
    public var interruptBitmap: [UInt64] = [0, 0, 0, 0]

    public init() {}

    public static let cr0Paging: UInt64 = 1 << 31
    public static let eferLongModeActive: UInt64 = 1 << 10
}
