/// A segment register as the CPU caches it: selector plus the descriptor it loaded.
public struct Segment: Equatable, Sendable {
    public var base: UInt64 = 0
    public var limit: UInt32 = 0
    public var selector: UInt16 = 0
    /// Descriptor type (for code: 0xb execute/read, accessed; for data: 0x3 read/write, accessed).
    public var type: UInt8 = 0
    public var present = false
    public var privilegeLevel: UInt8 = 0
    /// D/B: 32-bit default operand size.
    public var defaultSize32 = false
    /// S: a code or data segment rather than a system one.
    public var codeOrData = false
    /// L: 64-bit code.
    public var longMode = false
    /// G: limit in 4 KiB units.
    public var granularity = false
    public var available = false
    public var unusable = false

    public init() {}
}

/// The base and limit of the GDT or the IDT.
public struct DescriptorTable: Equatable, Sendable {
    public var base: UInt64 = 0
    public var limit: UInt16 = 0

    public init(base: UInt64 = 0, limit: UInt16 = 0) {
        self.base = base
        self.limit = limit
    }
}
