import CLinux
import Glibc
import Memory

/// A host directory a guest may use, and nothing outside it. Every path is relative to
/// the directory, resolved by the kernel with openat2 beneath the directory's fd: no
/// symlink is followed and no `..` leaves it, whatever the guest names and whatever the
/// share holds. What is opened is only ever a regular file or a directory: a device node,
/// FIFO or socket put in the share (by the host, or by an image's layers) is refused
/// before it is used, and no open waits. Opened read-only for a read-only share.
public final class SharedDirectory: @unchecked Sendable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case cannotOpen(path: String, reason: String)
        case notADirectory(path: String)
        /// The host kernel predates openat2 (Linux 5.6), without which the share cannot be confined.
        case noConfinement(path: String)
        /// A name given as visible is not a single name of the directory's top level.
        case badEntry(path: String, name: String)

        public var description: String {
            switch self {
            case .cannotOpen(let path, let reason): return "cannot open the shared directory \(path): \(reason)"
            case .notADirectory(let path): return "the share \(path) is not a directory"
            case .noConfinement(let path):
                return "cannot share \(path): this host kernel has no openat2 (Linux 5.6 or later), which confines a share"
            case .badEntry(let path, let name): return "cannot share '\(name)' of \(path): it is not a single name"
            }
        }
    }

    /// Longest path kept for a file, in bytes (PATH_MAX).
    public static let maximumPathLength = 4096

    public let path: String
    public let isReadOnly: Bool
    /// Whether the setuid and setgid bits the guest gives files are kept.
    public let keepsSetID: Bool
    /// The only names of the top level the guest sees, or nil for all.
    public let visibleEntries: Set<String>?
    public let userIDs: [IDMapping]
    public let groupIDs: [IDMapping]
    let root: Int32

    public init(path: String, readOnly: Bool, keepsSetID: Bool = false, visibleEntries: Set<String>? = nil,
                userIDs: [IDMapping] = [], groupIDs: [IDMapping] = []) throws(SharedDirectory.Error) {
        if let bad = visibleEntries?.first(where: { !Self.isName($0) }) { throw .badEntry(path: path, name: bad) }
        self.path = path
        isReadOnly = readOnly
        self.keepsSetID = keepsSetID
        self.visibleEntries = visibleEntries
        self.userIDs = userIDs
        self.groupIDs = groupIDs
        let fd: Int32
        do {
            fd = try InputFile(path, kinds: .directory).take()
        } catch {
            throw error.isWrongKind ? .notADirectory(path: path) : .cannotOpen(path: path, reason: error.reason)
        }
        root = fd
        let probe = clinux_openat2(fd, ".", UInt64(CLINUX_O_PATH | O_CLOEXEC), 0, CLINUX_RESOLVE_BENEATH)
        guard probe >= 0 else {
            close(fd)
            throw probe == -ENOSYS ? .noConfinement(path: path) : .cannotOpen(path: path, reason: String(cString: strerror(Int32(-probe))))
        }
        close(probe)
    }

    deinit { close(root) }

    /// An empty directory served read-only, made and removed at once (only the open
    /// descriptor keeps it): the top of a share of exports.
    public static func empty() throws(SharedDirectory.Error) -> SharedDirectory {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/microvm-exports-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap(mkdtemp) }) else {
            throw .cannotOpen(path: base, reason: "cannot make a directory in it: \(String(cString: strerror(errno)))")
        }
        let path = String(cString: made)
        defer { rmdir(path) }
        return try SharedDirectory(path: path, readOnly: true)
    }

    /// Whether `name` may be one step of a path: not empty, no slash, no NUL, not `.` or `..`.
    static func isName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.utf8.contains(0x2f) && !name.utf8.contains(0)
    }

    /// Whether the guest may see `path`: the root, or anything under a visible top-level name.
    func isVisible(_ path: SharePath) -> Bool {
        guard let visibleEntries, let first = path.first else { return true }
        return visibleEntries.contains(String(first))
    }

    /// Opens `path` beneath the share; a final symlink is refused (ELOOP), or opened as
    /// itself with O_PATH. Anything but O_PATH opens only a regular file or a directory
    /// (EPERM for the rest): what is there is looked at first, so that a device's driver
    /// or a FIFO is never reached, and what was opened is looked at again, in case the
    /// host swapped the entry between the two (the open does not block, and nothing is
    /// read from or written to the refused file).
    func open(_ path: SharePath, flags: Int32, mode: UInt32 = 0) -> Result<Int32, NinePError> {
        guard isVisible(path) else { return .failure(NinePError(ENOENT)) }
        guard flags & CLINUX_O_PATH == 0 else { return openat(path, flags: flags, mode: mode) }
        if case .success(let status) = status(path), !Self.mayOpen(status) {
            return .failure(NinePError(status.st_mode & S_IFMT == S_IFLNK ? ELOOP : EPERM))
        }
        let opened = openat(path, flags: flags | O_NONBLOCK | O_NOCTTY, mode: mode)
        guard case .success(let fd) = opened else { return opened }
        var status = stat()
        guard fstat(fd, &status) == 0, Self.mayOpen(status) else {
            close(fd)
            return .failure(NinePError(EPERM))
        }
        return .success(fd)
    }

    private func openat(_ path: SharePath, flags: Int32, mode: UInt32) -> Result<Int32, NinePError> {
        let resolve = CLINUX_RESOLVE_BENEATH | CLINUX_RESOLVE_NO_MAGICLINKS | CLINUX_RESOLVE_NO_SYMLINKS
        let fd = clinux_openat2(root, path.relative, UInt64(flags | O_CLOEXEC | O_NOFOLLOW), UInt64(mode), resolve)
        return fd >= 0 ? .success(fd) : .failure(NinePError(-fd))
    }

    private static func mayOpen(_ status: stat) -> Bool {
        status.st_mode & S_IFMT == S_IFREG || status.st_mode & S_IFMT == S_IFDIR
    }

    /// lstat of `path` beneath the share.
    func status(_ path: SharePath) -> Result<stat, NinePError> {
        withDescriptor(path, flags: CLINUX_O_PATH) { fd in
            var status = stat()
            return fstat(fd, &status) == 0 ? .success(status) : .failure(NinePError(errno))
        }
    }

    /// Runs `body` with an fd of `path` opened with `flags`, closed afterwards.
    func withDescriptor<T>(_ path: SharePath, flags: Int32, _ body: (Int32) -> Result<T, NinePError>) -> Result<T, NinePError> {
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
    func withParent<T>(_ path: SharePath, _ body: (Int32, String) -> Result<T, NinePError>) -> Result<T, NinePError> {
        guard let name = path.last else { return body(root, ".") }
        guard isVisible(path) else { return .failure(NinePError(ENOENT)) }
        return withDescriptor(path.parent, flags: CLINUX_O_PATH | O_DIRECTORY) { body($0, String(name)) }
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
