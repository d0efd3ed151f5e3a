import Glibc

/// Unix stream socket helpers for the console socket and `microvm attach`.
public enum UnixSocket {
    /// sun_path's size: a path must be shorter, for its NUL.
    public static let maximumPathLength = MemoryLayout.size(ofValue: sockaddr_un().sun_path)

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case pathTooLong(String)
        case inUse(String)
        case exists(String)
        case failed(call: String, path: String, errno: Int32)

        public var description: String {
            switch self {
            case .pathTooLong(let path): return "socket path \(path) is longer than \(UnixSocket.maximumPathLength - 1) bytes"
            case .inUse(let path): return "\(path) is in use by another microvm (a client connected to it)"
            case .exists(let path): return "\(path) exists and is not a socket; choose another path"
            case .failed(let call, let path, let errno): return "\(call) \(path): \(String(cString: strerror(errno)))"
            }
        }
    }

    static func address(_ path: String) throws(UnixSocket.Error) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw .pathTooLong(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    /// Connects to the socket at `path`; returns the fd.
    public static func connect(to path: String) throws(UnixSocket.Error) -> Int32 {
        var address = try address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed(call: "socket for", path: path, errno: errno) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let error = errno
            close(fd)
            throw .failed(call: "cannot connect to", path: path, errno: error)
        }
        return fd
    }

    /// Listens at `path` (mode 0600). An existing socket nobody answers on is stale and
    /// replaced; anything else at `path` is refused.
    public static func listen(at path: String) throws(UnixSocket.Error) -> Int32 {
        var address = try address(path)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw .exists(path) }
            if let fd = try? connect(to: path) {
                close(fd)
                throw .inUse(path)
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw .failed(call: "socket for", path: path, errno: errno) }
        // Only the owner may attach: the console is a root shell in many guests.
        let previousMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previousMask)
        guard bound == 0, Glibc.listen(fd, 4) == 0 else {
            let error = errno
            close(fd)
            throw .failed(call: "cannot listen on", path: path, errno: error)
        }
        return fd
    }
}
