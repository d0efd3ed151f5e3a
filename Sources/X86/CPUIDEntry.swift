/// One CPUID leaf (function, and index for leaves that have sub-leaves) and its answer.
public struct CPUIDEntry: Equatable, Sendable {
    public var function: UInt32
    public var index: UInt32
    /// KVM_CPUID_FLAG_* bits: whether the index is significant, and state for stateful leaves.
    public var flags: UInt32
    public var eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32

    public init(function: UInt32, index: UInt32 = 0, flags: UInt32 = 0,
                eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) {
        self.function = function
        self.index = index
        self.flags = flags
        self.eax = eax
        self.ebx = ebx
        self.ecx = ecx
        self.edx = edx
    }
}
