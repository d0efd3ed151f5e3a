import Glibc
import VMM
import Runtime

/// The runtime's state directory (`--root`): one directory per container, named by its
/// ID, holding `state.json`, the start FIFO, the guest's configuration archive and the
/// VM's console log. Every command holds a lock on the container's directory (flock:
/// shared to read, exclusive to change), so `state` is right from any process.
public struct StateStore: Sendable {
    public let root: String

    public static let defaultRoot = "/run/microvm-oci"

    /// `root` may be relative, to the working directory; an empty one is refused rather
    /// than taken for the working directory or `/`.
    public init(root: String) throws(OCIError) {
        guard !root.isEmpty else { throw .usage("--root: the state directory's path is empty") }
        if root.hasPrefix("/") {
            self.root = root
        } else {
            guard let directory = getcwd(nil, 0) else {
                throw .failed("--root \(root): cannot find the working directory: \(String(cString: strerror(errno)))")
            }
            defer { free(directory) }
            self.root = String(cString: directory) + "/" + root
        }
        var path = ""
        for component in self.root.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw .failed("cannot make the state directory \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// IDs are one path component of letters, digits, `_`, `-` and `.`, as runc takes them.
    public static func checkID(_ id: String) throws(OCIError) {
        let allowed = id.utf8.allSatisfy { byte in
            (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
        }
        guard !id.isEmpty, id.utf8.count <= 1024, allowed, id != ".", id != ".." else {
            throw .usage("invalid container ID '\(id.prefix(64))': use letters, digits, '_', '-' and '.'")
        }
    }

    /// Where the container `id` keeps its files (whether or not it exists); an ID that is
    /// not one path component never makes a path.
    public func paths(of id: String) throws(OCIError) -> ContainerPaths {
        try Self.checkID(id)
        return ContainerPaths(directory: root + "/" + id)
    }

    /// Makes the directory of a new container, locked; fails if the ID is taken.
    public func create(_ id: String) throws(OCIError) -> ContainerDirectory {
        let paths = try paths(of: id)
        guard mkdir(paths.directory, 0o700) == 0 else {
            if errno == EEXIST { throw .alreadyExists(id) }
            throw .failed("cannot make \(paths.directory): \(String(cString: strerror(errno)))")
        }
        return try ContainerDirectory(paths: paths, id: id, exclusive: true)
    }

    /// Opens an existing container's directory with a shared or exclusive lock.
    public func open(_ id: String, exclusive: Bool) throws(OCIError) -> ContainerDirectory {
        let directory = try ContainerDirectory(paths: try paths(of: id), id: id, exclusive: exclusive)
        // A directory that lost its state (a create that failed half-way, or a delete
        // between our open and lock) is no container.
        guard access(directory.paths.state, F_OK) == 0 else { throw .noSuchContainer(id) }
        return directory
    }
}

/// The files of one container's directory.
public struct ContainerPaths: Sendable {
    public let directory: String

    public var state: String { directory + "/state.json" }
    /// The VM process opens it for writing and waits until `start` opens it for reading.
    public var startFIFO: String { directory + "/start.fifo" }
    /// The archive the guest finds as /oci/config.
    public var configArchive: String { directory + "/config.cpio" }
    /// The guest kernel's console.
    public var consoleLog: String { directory + "/console.log" }

    /// The directory of the VM's control socket, the one part of the container's
    /// directory its jail shows.
    public var controlDirectory: String { directory + "/control" }
    /// The VM's control socket (pause, resume).
    public var controlSocket: String { controlDirectory + "/api.sock" }
    var all: [String] { [state, state + ".new", startFIFO, configArchive, consoleLog, controlSocket] }
}

/// A container's directory, open and locked while this value lives.
public final class ContainerDirectory {
    public let paths: ContainerPaths
    public let id: String
    private let fd: Int32

    init(paths: ContainerPaths, id: String, exclusive: Bool) throws(OCIError) {
        self.paths = paths
        self.id = id
        fd = Glibc.open(paths.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw .noSuchContainer(id) }
            throw .failed("cannot open \(paths.directory): \(String(cString: strerror(errno)))")
        }
        while flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0 {
            guard errno == EINTR else {
                close(fd)
                throw .failed("cannot lock \(paths.directory): \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit {
        close(fd)
    }

    public func read() throws(OCIError) -> ContainerRecord {
        let json = try FileIO.readJSON(paths.state) { .failed("the state of container \(id) is damaged: \($0)") }
        do {
            return try ContainerRecord(json)
        } catch {
            throw .failed("the state of container \(id) is damaged: \(error)")
        }
    }

    /// Replaces state.json whole (a reader never sees half of it).
    public func write(_ record: ContainerRecord) throws(OCIError) {
        let temporary = paths.state + ".new"
        try FileIO.write(temporary, Array((record.json.encoded + "\n").utf8))
        guard rename(temporary, paths.state) == 0 else { throw .failed("cannot write \(paths.state): \(String(cString: strerror(errno)))") }
    }

    /// Removes the directory and everything in it (the lock goes with the descriptor).
    public func remove() {
        for path in paths.all { unlink(path) }
        rmdir(paths.controlDirectory)
        rmdir(paths.directory)
    }
}

/// Whole-file reads and writes with errors that name the file.
public enum FileIO {
    public static let maximumSize = 4 << 20

    /// Reads a regular file; anything else (a FIFO would never end the read) is refused.
    public static func read(_ path: String, limit: Int = maximumSize) throws(OCIError) -> [UInt8] {
        let fd: Int32
        do {
            fd = try InputFile(path, kinds: .regular).take()
        } catch {
            throw .failed(error.description)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw .failed("cannot read \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { return bytes }
            bytes += buffer[0..<count]
            guard bytes.count <= limit else { throw .failed("\(path) is larger than \(limit) bytes") }
        }
    }

    /// The JSON document in `path`; one that does not parse is `malformed`'s error.
    public static func readJSON(_ path: String, malformed: (JSONValue.ParseError) -> OCIError) throws(OCIError) -> JSONValue {
        let bytes = try read(path)
        do {
            return try JSONValue.parse(bytes)
        } catch {
            throw malformed(error)
        }
    }

    /// Writes a regular file whole. The open does not block and nothing but a regular file
    /// is written: a FIFO named as the PID file would otherwise wait for a reader forever.
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600) throws(OCIError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .failed("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw .failed("cannot create \(path): \(String(cString: strerror(errno)))") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .failed("cannot create \(path): it is \(InputFile.describe(status)), not a regular file") }
        guard ftruncate(fd, 0) == 0 else { throw .failed("cannot write \(path): \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw .failed("cannot write \(path): \(String(cString: strerror(errno)))") }
            offset += written
        }
    }
}
