import Memory

/// What a loader leaves behind: how to enter the kernel and what constrains the rest.
public struct LoadedKernel: Sendable {
    public enum Entry: Equatable, Sendable {
        /// Linux 64-bit boot protocol: long mode, RSI = zero page.
        case linux64(GuestAddress)
        /// PVH: 32-bit protected mode, paging off, RBX = `hvm_start_info`.
        case pvh(GuestAddress)
    }

    public let entry: Entry
    /// First byte after everything the kernel occupies or will claim while starting.
    public let end: GuestAddress
    /// Longest command line the kernel accepts, without the NUL.
    public let commandLineLimit: Int
    /// Highest address the initrd may end at (inclusive), if the kernel says.
    public let initrdAddressMax: UInt64?
    /// The bzImage's setup header bytes, for the zero page.
    public let setupHeader: [UInt8]?
}
