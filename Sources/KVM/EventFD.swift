import CLinux
import Glibc
import SystemPackage

/// A Linux eventfd: a counter the kernel (ioeventfd, irqfd) and our threads signal each other with.
public final class EventFD: @unchecked Sendable {
    public let fd: FileDescriptor

    public init(nonBlocking: Bool = false) throws(KVMError) {
        let flags = EFD_CLOEXEC | (nonBlocking ? EFD_NONBLOCK : 0)
        let raw = eventfd(0, Int32(flags))
        guard raw >= 0 else { throw .systemCallFailed(call: "eventfd", errno: Errno(rawValue: errno)) }
        fd = FileDescriptor(rawValue: raw)
    }

    deinit {
        try? fd.close()
    }

    /// Adds one to the counter, waking any reader.
    public func signal() {
        var one: UInt64 = 1
        _ = write(fd.rawValue, &one, 8)
    }
}
