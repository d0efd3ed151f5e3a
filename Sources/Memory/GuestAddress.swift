/// A guest physical address.
public struct GuestAddress: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public init(integerLiteral value: UInt64) { rawValue = value }

    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The address `offset` bytes further on, or nil where that wraps past 2^64.
    public func adding(_ offset: UInt64) -> GuestAddress? {
        let (sum, overflow) = rawValue.addingReportingOverflow(offset)
        return overflow ? nil : GuestAddress(sum)
    }

    /// Rounds up to a multiple of `alignment` (a power of two), or nil on overflow.
    public func alignedUp(to alignment: UInt64) -> GuestAddress? {
        precondition(alignment.nonzeroBitCount == 1, "alignment must be a power of two")
        return adding(alignment - 1).map { GuestAddress($0.rawValue & ~(alignment - 1)) }
    }

    public var description: String { "0x" + String(rawValue, radix: 16) }
}
