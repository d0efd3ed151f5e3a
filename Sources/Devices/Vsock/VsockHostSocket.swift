import Glibc

/// The host side of a guest's connection: a guest connecting to the host's port P
/// reaches the Unix socket PATH_P.
public enum VsockHostSocket {
    /// Connects to `path`_`port` without waiting; nil refuses the guest (it gets a RST):
    /// no socket there, nobody listening, a listener whose backlog is full, a path too
    /// long for a socket address. A non-blocking connect of a Unix stream socket ends at
    /// once (a full backlog is EAGAIN, never EINPROGRESS: net/unix/af_unix.c), so there
    /// is no connect in progress to wait for.
    public static func connect(_ path: String, port: UInt32) -> Int32? {
        let name = Array("\(path)_\(port)".utf8)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard name.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return nil }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            close(fd)
            return nil
        }
        return fd
    }
}
