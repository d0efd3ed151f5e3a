/// The x87 and SSE state in FXSAVE terms.
public struct FPUState: Equatable, Sendable {
    /// ST0–ST7, 16 bytes each.
    public var registers = [UInt8](repeating: 0, count: 128)
    public var controlWord: UInt16 = 0
    public var statusWord: UInt16 = 0
    /// Abridged tag word, as FXSAVE stores it.
    public var tagWord: UInt8 = 0
    public var lastOpcode: UInt16 = 0
    public var lastInstructionPointer: UInt64 = 0
    public var lastDataPointer: UInt64 = 0
    /// XMM0–XMM15, 16 bytes each.
    public var xmm = [UInt8](repeating: 0, count: 256)
    public var mxcsr: UInt32 = 0

    public init() {}
}
