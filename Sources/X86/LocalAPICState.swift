/// The local APIC's register page (1 KiB as KVM exchanges it), with 32-bit register access.
public struct LocalAPICState: Equatable, Sendable {
    public static let size = 0x400
    public var bytes: [UInt8]

    public init(bytes: [UInt8] = [UInt8](repeating: 0, count: LocalAPICState.size)) {
        self.bytes = bytes
    }

    /// The 32-bit register at `offset` (0x350 LVT LINT0, 0x360 LVT LINT1, …).
    public subscript(register offset: Int) -> UInt32 {
        get {
            bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        }
        set {
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: newValue.littleEndian, toByteOffset: offset, as: UInt32.self) }
        }
    }
}
