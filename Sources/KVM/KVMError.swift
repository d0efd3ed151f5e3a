import SystemPackage

/// A failure talking to KVM. Every case names what was attempted and why it failed,
/// so that the message alone is enough to act on.
public enum KVMError: Error, Equatable, CustomStringConvertible {
    /// An ioctl (named as in <linux/kvm.h>) returned an error.
    case ioctlFailed(request: String, errno: Errno)
    /// The KVM device node does not exist.
    case deviceMissing(path: String)
    /// The KVM device node exists but could not be opened.
    case deviceUnavailable(path: String, errno: Errno)
    /// The kernel speaks another KVM API version than the one this VMM was written for.
    case unsupportedAPIVersion(found: Int32, expected: Int32)
    /// A capability this VMM relies on is absent.
    case missingCapability(name: String)
    /// A system call other than an ioctl failed (mmap of kvm_run, eventfd, …).
    case systemCallFailed(call: String, errno: Errno)
    /// Saved state handed back to KVM does not have the shape of the struct it stands for.
    case badSavedState(what: String, size: Int, expected: Int)

    public var description: String {
        switch self {
        case .ioctlFailed(let request, let errno):
            return "\(request) failed: \(errno.message)"
        case .deviceMissing(let path):
            return "\(path) does not exist: this host does not offer KVM "
                + "(load the kvm_intel or kvm_amd module, or enable virtualization for this machine)"
        case .deviceUnavailable(let path, let errno):
            let hint = errno == .permissionDenied
                ? "; run as root or add your user to the group that owns \(path) (usually 'kvm')" : ""
            return "cannot open \(path): \(errno.message)\(hint)"
        case .unsupportedAPIVersion(let found, let expected):
            return "KVM API version \(found) is not supported: microvm needs version \(expected)"
        case .missingCapability(let name):
            return "KVM on this host lacks \(name), which microvm needs"
        case .systemCallFailed(let call, let errno):
            return "\(call) failed: \(errno.message)"
        case .badSavedState(let what, let size, let expected):
            return "saved \(what) is malformed (\(size) where \(expected) was expected)"
        }
    }
}

extension Errno {
    /// `Permission denied (EACCES)`: the text and the symbolic name, as users search for both.
    public var message: String {
        if let name = ErrnoName.lookup(rawValue) {
            return "\(description) (\(name))"
        }
        return "\(description) (errno \(rawValue))"
    }
}
