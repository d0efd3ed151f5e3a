import Memory

/// A guest-controlled virtqueue value that breaks the rules of the virtio 1.x split ring.
/// The queue that produced it stops being processed; the device asks for a reset.
public enum VirtqueueError: Error, Equatable, CustomStringConvertible {
    case outsideMemory(what: String, address: GuestAddress, length: Int)
    case misaligned(what: String, address: GuestAddress, alignment: UInt64)
    case headOutOfRange(index: UInt16, size: UInt16)
    case chainTooLong(head: UInt16)
    case nextOutOfRange(head: UInt16, next: UInt16)
    case zeroLength(head: UInt16)
    case badIndirectTable(head: UInt16, length: UInt32)
    case nestedIndirect(head: UInt16)
    case readableAfterWritable(head: UInt16)
    case availableIndexJump(previous: UInt16, now: UInt16, size: UInt16)
    /// What the device writes (the used ring, or a writable buffer) covers the available
    /// ring's index: each write would publish new chains, and serving would never end.
    case overlapsAvailableIndex(what: String, address: GuestAddress)
    case wrongDirection(head: UInt16, expected: String)
    /// The chain cannot carry a request of the device's kind at all (no status byte, …).
    case malformedRequest(head: UInt16, reason: String)

    public var description: String {
        switch self {
        case .outsideMemory(let what, let address, let length):
            return "\(what) at \(address) (\(length) bytes) is outside guest memory"
        case .misaligned(let what, let address, let alignment):
            return "\(what) at \(address) is not aligned to \(alignment) bytes"
        case .headOutOfRange(let index, let size):
            return "descriptor index \(index) is beyond the queue size \(size)"
        case .chainTooLong(let head):
            return "descriptor chain from \(head) loops or is longer than \(Virtqueue.maximumChainLength) buffers"
        case .nextOutOfRange(let head, let next):
            return "descriptor chain from \(head) continues to \(next), beyond the table"
        case .zeroLength(let head):
            return "descriptor chain from \(head) has a zero-length buffer"
        case .badIndirectTable(let head, let length):
            return "descriptor \(head) points to an indirect table of \(length) bytes, not a non-zero multiple of 16"
        case .nestedIndirect(let head):
            return "descriptor chain from \(head) nests indirect tables"
        case .readableAfterWritable(let head):
            return "descriptor chain from \(head) has a device-readable buffer after a writable one"
        case .availableIndexJump(let previous, let now, let size):
            return "available index moved from \(previous) to \(now), more than the queue size \(size)"
        case .overlapsAvailableIndex(let what, let address):
            return "\(what) at \(address) covers the available ring's index, which the device must never write"
        case .wrongDirection(let head, let expected):
            return "descriptor chain from \(head) should hold only \(expected) buffers"
        case .malformedRequest(let head, let reason):
            return "descriptor chain from \(head): \(reason)"
        }
    }
}
