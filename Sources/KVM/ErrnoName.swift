import Glibc

/// Symbolic names of the errno values KVM and the calls around it return.
/// glibc's `strerrorname_np` is not visible to Swift, hence this short table.
enum ErrnoName {
    static func lookup(_ value: Int32) -> String? {
        switch value {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case ENXIO: return "ENXIO"
        case E2BIG: return "E2BIG"
        case EBADF: return "EBADF"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENODEV: return "ENODEV"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case EMFILE: return "EMFILE"
        case ENOTTY: return "ENOTTY"
        case ENOSPC: return "ENOSPC"
        case ERANGE: return "ERANGE"
        case ENOSYS: return "ENOSYS"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case ENOEXEC: return "ENOEXEC"
        default: return nil
        }
    }
}
