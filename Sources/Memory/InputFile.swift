import Glibc

/// A file the user or a caller named as an input, opened so that naming the wrong thing
/// can neither hang nor reach a device: the open never blocks (a FIFO would wait for a
/// writer forever, some devices wait for a carrier), and what was opened is refused
/// unless it is of a kind the input takes. Kept in Memory, the lowest layer, because the
/// loaders, the devices, the runtime and the OCI runtime all open inputs.
public struct InputFile: ~Copyable {
    /// The kinds of file an input may be.
    public struct Kinds: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }

        public static let regular = Kinds(rawValue: 1)
        public static let directory = Kinds(rawValue: 2)
        public static let blockDevice = Kinds(rawValue: 4)
        /// Only outputs take one (/dev/null).
        public static let characterDevice = Kinds(rawValue: 8)
    }

    /// Why an input could not be opened: the path and a reason that reads after "cannot open PATH: ".
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public let path: String
        public let reason: String
        /// The file was there and opened, but is of a kind the input does not take.
        public var isWrongKind = false

        public var description: String { "cannot open \(path): \(reason)" }
    }

    /// Where a file lives: two opens of the same file give the same identity, whatever
    /// the paths, so that an output is never written over an input of the same run.
    public struct Identity: Hashable, Sendable {
        public let device: UInt64
        public let inode: UInt64

        public init(_ status: stat) {
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
        }

        /// The identity of what `path` names now (following symlinks), or nil where nothing is there.
        public static func of(_ path: String) -> Identity? {
            var status = stat()
            return stat(path, &status) == 0 ? Identity(status) : nil
        }
    }

    public let path: String
    /// The open descriptor, owned by this value and closed with it unless `take()` hands it on.
    public private(set) var fd: Int32
    public let status: stat

    /// Opens `path` with `flags` (O_RDONLY, O_RDWR, O_WRONLY | O_CREAT with `mode`, …;
    /// O_NONBLOCK, O_NOCTTY and O_CLOEXEC are added) and checks its kind. What was opened
    /// is handed back blocking again, as its readers and writers expect.
    public init(_ path: String, flags: Int32 = O_RDONLY, mode: mode_t = 0, kinds: Kinds) throws(InputFile.Error) {
        guard !path.isEmpty else { throw Error(path: "''", reason: "the path is empty") }
        let fd = Glibc.open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            // A directory opened for writing fails with EISDIR, a FIFO without a reader with
            // ENXIO: what the file is says more than those.
            var status = stat()
            if stat(path, &status) == 0, !(Self.kind(status).map(kinds.contains) ?? false) {
                throw Error(path: path, reason: "it is \(Self.describe(status)), not \(Self.describe(kinds))", isWrongKind: true)
            }
            throw Error(path: path, reason: reason)
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Error(path: path, reason: reason)
        }
        let kind = Self.kind(status)
        guard let kind, kinds.contains(kind) else {
            close(fd)
            throw Error(path: path, reason: "it is \(Self.describe(status)), not \(Self.describe(kinds))", isWrongKind: true)
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        self.path = path
        self.fd = fd
        self.status = status
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    public var identity: Identity { Identity(status) }

    /// Hands the descriptor to the caller, who closes it from now on.
    public consuming func take() -> Int32 {
        let taken = fd
        fd = -1
        return taken
    }

    /// The kind of an opened file among those an input can be, or nil for any other.
    static func kind(_ status: stat) -> Kinds? {
        switch status.st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFBLK: return .blockDevice
        case S_IFCHR: return .characterDevice
        default: return nil
        }
    }

    /// "a FIFO", "a directory", …: what a file is, for a message.
    public static func describe(_ status: stat) -> String {
        switch status.st_mode & S_IFMT {
        case S_IFREG: return "a regular file"
        case S_IFDIR: return "a directory"
        case S_IFBLK: return "a block device"
        case S_IFCHR: return "a character device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "not a file"
        }
    }

    static func describe(_ kinds: Kinds) -> String {
        var names: [String] = []
        if kinds.contains(.regular) { names.append("a regular file") }
        if kinds.contains(.blockDevice) { names.append("a block device") }
        if kinds.contains(.characterDevice) { names.append("a character device") }
        if kinds.contains(.directory) { names.append("a directory") }
        guard let last = names.popLast() else { return "a file" }
        return names.isEmpty ? last : names.joined(separator: ", ") + " or " + last
    }
}
