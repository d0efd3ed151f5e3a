import Glibc

/// Why a snapshot could not be taken or put back; each message is one line a user can act on.
public enum SnapshotError: Error, Equatable, CustomStringConvertible {
    case notASnapshot
    case version(found: UInt32, expected: UInt32)
    case checksum
    case truncated
    case malformed(String)
    case missingSection(String)
    case otherHost
    case diskChanged(path: String, reason: String)
    /// The restore's disks or shares are not the snapshot's devices.
    case devicesDiffer(String)
    /// The memory file cannot back the restored guest's RAM.
    case memoryFile(path: String, reason: String)
    /// A temporary file of a snapshot is already there.
    case leftover(path: String)
    /// The snapshot would replace a file the VM runs from.
    case replacesInput(path: String, input: String)
    case file(path: String, action: String, errno: Int32)
    case notPaused(String)
    case state(String)
    case networkDevice
    case boundSlots

    public var description: String {
        switch self {
        case .notASnapshot: "the file is not a microvm snapshot"
        case .version(let found, let expected):
            "the snapshot has format version \(found); this microvm reads version \(expected)"
        case .checksum: "the snapshot's checksum does not match: the file is damaged"
        case .truncated: "the snapshot ends early: the file is truncated"
        case .malformed(let what): "the snapshot is malformed: \(what)"
        case .missingSection(let tag): "the snapshot lacks its \(tag) section"
        case .otherHost:
            "the snapshot was taken on a host whose CPU (CPUID) differs from this one's; restore it on the host that took it"
        case .diskChanged(let path, let reason):
            "the disk \(path) is not the file the snapshot was taken with (\(reason)); restore with the same disk"
        case .devicesDiffer(let reason): "the restore's devices do not match the snapshot's: \(reason)"
        case .memoryFile(let path, let reason): "cannot restore guest memory from \(path): \(reason)"
        case .leftover(let path):
            "\(path) exists: another snapshot to this path is under way, or one was interrupted; remove it first"
        case .replacesInput(let path, let input): "\(path) is \(input), which this VM runs from; a snapshot never replaces it"
        case .file(let path, let action, let errno): "cannot \(action) \(path): \(String(cString: strerror(errno)))"
        case .notPaused(let reason): "cannot pause the VM: \(reason)"
        case .state(let reason): "cannot restore the VM: \(reason)"
        case .networkDevice:
            "the VM's network or vsock device has traffic in flight, which lives in host sockets outside a snapshot; snapshot it when idle"
        case .boundSlots:
            "a VM restored from a template with disks in its slots is not snapshotted: a restore could not check those disks"
        }
    }
}
