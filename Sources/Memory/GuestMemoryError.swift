import Glibc

/// A guest memory access or layout that cannot be honoured.
public enum GuestMemoryError: Error, Equatable, CustomStringConvertible {
    /// `length` bytes at `address` are not all inside one RAM region.
    case outOfRange(address: GuestAddress, length: Int)
    /// The requested RAM size is zero, not page aligned, or larger than the address space allows.
    case invalidSize(UInt64, reason: String)
    /// Regions overlap or are not page aligned.
    case invalidLayout(String)
    /// The host refused the anonymous mapping backing guest RAM.
    case mappingFailed(size: Int, errno: Int32)
    /// Writing guest RAM to a snapshot's memory file failed.
    case saveFailed(errno: Int32)

    public var description: String {
        switch self {
        case .outOfRange(let address, let length):
            return "guest memory access of \(length) bytes at \(address) is outside guest RAM"
        case .invalidSize(let size, let reason):
            return "invalid guest memory size \(size) bytes: \(reason)"
        case .invalidLayout(let reason):
            return "invalid guest memory layout: \(reason)"
        case .mappingFailed(let size, let errno):
            return "cannot map \(size) bytes of guest memory: \(String(cString: strerror(errno)))"
        case .saveFailed(let errno):
            return "cannot write guest memory to the snapshot's memory file: \(String(cString: strerror(errno)))"
        }
    }
}
