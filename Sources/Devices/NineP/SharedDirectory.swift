import CLinux
import Glibc

/// A host directory a guest may use, and nothing outside it. Every path is a list of
/// single names relative to the directory, resolved by the kernel with openat2
/// beneath the directory's fd: no symlink is followed and no `..` leaves it, whatever
/// the guest names and whatever the share holds. Opened read-only for a read-only share.
public final class SharedDirectory: @unchecked Sendable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case cannotOpen(path: String, reason: String)
        case notADirectory(path: String)
        /// The host kernel predates openat2 (Linux 5.6), without which the share cannot be confined.
        case noConfinement(path: String)

        public var description: String {
            switch self {
            case .cannotOpen(let path, let reason): return "cannot open the shared directory \(path): \(reason)"
            case .notADirectory(let path): return "the share \(path) is not a directory"
            case .noConfinement(let path):
                return "cannot share \(path): this host kernel has no openat2 (Linux 5.6 or later), which confines a share"
            }
        }
    }

    /// Longest path kept for a file, in bytes (PATH_MAX).
    public static let maximumPathLength = 4096

    public let path: String
    public let isReadOnly: Bool
    let root: Int32

    public init(path: String, readOnly: Bool) throws(SharedDirectory.Error) {
        self.path = path
        isReadOnly = readOnly
        var status = stat()
        guard stat(path, &status) == 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw .notADirectory(path: path) }
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        root = fd
        let probe = clinux_openat2(fd, ".", UInt64(CLINUX_O_PATH | O_CLOEXEC), 0, CLINUX_RESOLVE_BENEATH)
        guard probe >= 0 else {
            close(fd)
            throw probe == -ENOSYS ? .noConfinement(path: path) : .cannotOpen(path: path, reason: String(cString: strerror(Int32(-probe))))
        }
        close(probe)
    }

    deinit { close(root) }

    /// Whether `name` may be one step of a path: not empty, no slash, no NUL, not `.` or `..`.
    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(0x2f) && !name.utf8.contains(0)
    }

    private static func relative(_ path: [String]) -> String {
        path.isEmpty ? "." : path.joined(separator: "/")
    }

    /// Opens `path` beneath the share; a final symlink is opened as itself with O_PATH and
    /// refused otherwise. Returns the fd or the errno.
    func open(_ path: [String], flags: Int32, mode: UInt32 = 0) -> Result<Int32, NinePError> {
        let resolve = CLINUX_RESOLVE_BENEATH | CLINUX_RESOLVE_NO_MAGICLINKS | CLINUX_RESOLVE_NO_SYMLINKS
        let fd = clinux_openat2(root, Self.relative(path), UInt64(flags | O_CLOEXEC | O_NOFOLLOW), UInt64(mode), resolve)
        return fd >= 0 ? .success(fd) : .failure(NinePError(-fd))
    }

    /// lstat of `path` beneath the share.
    func status(_ path: [String]) -> Result<stat, NinePError> {
        withDescriptor(path, flags: CLINUX_O_PATH) { fd in
            var status = stat()
            return fstat(fd, &status) == 0 ? .success(status) : .failure(NinePError(errno))
        }
    }

    /// Runs `body` with an fd of `path` opened with `flags`, closed afterwards.
    func withDescriptor<T>(_ path: [String], flags: Int32, _ body: (Int32) -> Result<T, NinePError>) -> Result<T, NinePError> {
        switch open(path, flags: flags) {
        case .success(let fd):
            defer { close(fd) }
            return body(fd)
        case .failure(let error):
            return .failure(error)
        }
    }

    /// Runs `body` with the directory holding `path` (an fd beneath the share) and the
    /// last name of `path`: how *at calls reach one entry without following it. The
    /// share's own root is reached as "." in itself.
    func withParent<T>(_ path: [String], _ body: (Int32, String) -> Result<T, NinePError>) -> Result<T, NinePError> {
        guard let name = path.last else { return body(root, ".") }
        return withDescriptor(Array(path.dropLast()), flags: CLINUX_O_PATH | O_DIRECTORY) { body($0, name) }
    }

    /// statfs of the file system holding the share.
    func statistics() -> Result<statfs, NinePError> {
        var result = statfs()
        return fstatfs(root, &result) == 0 ? .success(result) : .failure(NinePError(errno))
    }
}

/// A failed host call: the Linux errno that an Rlerror carries back.
struct NinePError: Error, Equatable {
    let errno: UInt32

    init(_ errno: Int32) { self.errno = UInt32(clamping: errno) }
    init(errno: UInt32) { self.errno = errno }

    static let readOnly = NinePError(errno: NineP.Errno.readOnly)
    static let badFid = NinePError(errno: NineP.Errno.badFile)
    static let invalid = NinePError(errno: NineP.Errno.invalid)
    static let notSupported = NinePError(errno: NineP.Errno.notSupported)

    /// The calling thread's errno now.
    static var last: NinePError { NinePError(Glibc.errno) }
}
