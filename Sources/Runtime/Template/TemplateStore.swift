import Devices
import Glibc
import Memory

/// Templates in the cache (`$MICROVM_TEMPLATES`, or `$MICROVM_CACHE/templates`, or
/// ~/.cache/microvm/templates): one
/// directory each, named by its key (`key(for:)`), holding the snapshot of a machine booted
/// until /init waits for a work order (`vm.snap`, `vm.snap.mem`) and a few lines on how it
/// was made (`info`). A template is published by renaming a finished directory into place,
/// and built under a lock on KEY.lock, so that processes asking for the same one at once
/// build it once.
public struct TemplateStore: Sendable {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// `$MICROVM_TEMPLATES`, or the cache's `templates`.
    public static var standard: TemplateStore {
        if let directory = getenv("MICROVM_TEMPLATES") { return TemplateStore(directory: String(cString: directory)) }
        return TemplateStore(directory: DefaultGuest.cacheDirectory + "/templates")
    }

    public struct Template: Sendable {
        public let key: String
        public let path: String
        /// What `info` says: the kernel, initrds, memory, vCPUs, when and how fast it was built.
        public let info: [(name: String, value: String)]

        public var snapshot: String { path + "/vm.snap" }
    }

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case notOwned(path: String, owner: UInt32)
        case openToOthers(path: String)
        case file(path: String, action: String, errno: Int32)
        case unknown(String)

        public var description: String {
            switch self {
            case .notOwned(let path, let owner): "the template directory \(path) belongs to uid \(owner), not to this user; refusing to use it"
            case .openToOthers(let path): "the template directory \(path) is writable by other users; refusing to use it (chmod go-w)"
            case .file(let path, let action, let code): "cannot \(action) \(path): \(String(cString: strerror(code)))"
            case .unknown(let key): "no template \(key) (microvm template list shows them)"
            }
        }
    }

    /// The key of a template of `machine`: a hash of the guest-visible spec, of what the
    /// kernel and initrd files are (device, inode, size, modification time) and of this
    /// microvm executable, so that a change to any of them makes another template.
    public static func key(for machine: MachineSpec) -> String {
        var writer = StateWriter()
        writer.put("microvm-template 1")
        machine.save(into: &writer)
        for path in [machine.kernel] + machine.initrds + ["/proc/self/exe"] {
            writer.put(path == "/proc/self/exe" ? "" : path)
            var status = stat()
            if stat(path, &status) == 0 {
                for value in [UInt64(status.st_dev), UInt64(status.st_ino), UInt64(status.st_size),
                              UInt64(bitPattern: Int64(status.st_mtim.tv_sec)), UInt64(status.st_mtim.tv_nsec)] {
                    writer.put(value)
                }
            }
        }
        return hash(writer.bytes, seed: 0xcbf2_9ce4_8422_2325) + hash(writer.bytes, seed: 0x8422_2325_cbf2_9ce4)
    }

    private static func hash(_ bytes: [UInt8], seed: UInt64) -> String {
        var hash = seed
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        let text = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - text.count) + text
    }

    /// Makes the store's directory (mode 0700) if it is missing, and refuses one that
    /// another user owns or can write: a template is trusted input (guest memory and CPU state).
    public func prepare() throws(Error) {
        var path = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            path += "/" + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .file(path: path, action: "make the directory", errno: errno) }
        }
        try Self.checkOwner(directory)
    }

    static func checkOwner(_ path: String) throws(Error) {
        var status = stat()
        guard lstat(path, &status) == 0 else { throw .file(path: path, action: "look at", errno: errno) }
        guard status.st_uid == geteuid() else { throw .notOwned(path: path, owner: status.st_uid) }
        guard status.st_mode & (S_IWGRP | S_IWOTH) == 0 else { throw .openToOthers(path: path) }
    }

    /// The finished template of `key`, if there is one that this user owns.
    public func template(_ key: String) throws(Error) -> Template? {
        let path = directory + "/" + key
        guard access(path + "/vm.snap", F_OK) == 0 else { return nil }
        try Self.checkOwner(path)
        return Template(key: key, path: path, info: Self.readInfo(path + "/info"))
    }

    /// Every finished template, by key.
    public func list() throws(Error) -> [Template] {
        guard let stream = opendir(directory) else {
            if errno == ENOENT { return [] }
            throw .file(path: directory, action: "read", errno: errno)
        }
        defer { closedir(stream) }
        var keys: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.count == 32, name.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) { keys.append(name) }
        }
        var templates: [Template] = []
        for key in keys.sorted() {
            if let template = try template(key) { templates.append(template) }
        }
        return templates
    }

    /// Removes the template `key` (a VM running from it keeps its memory file).
    public func remove(_ key: String) throws(Error) {
        guard key.count == 32, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
              access(directory + "/" + key, F_OK) == 0 else { throw .unknown(key) }
        try Self.removeTree(directory + "/" + key)
    }

    /// Runs `body` holding the build lock of `key`: the other processes that build it wait.
    func locked<T>(_ key: String, _ body: () throws -> T) throws -> T {
        let path = directory + "/" + key + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Error.file(path: path, action: "open", errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw Error.file(path: path, action: "lock", errno: errno) }
        }
        return try body()
    }

    /// A new directory to build `key` in; `publish` renames it into place.
    func staging(_ key: String) throws(Error) -> String {
        let path = directory + "/." + key + ".partial-\(getpid())"
        try? Self.removeTree(path)
        guard mkdir(path, 0o700) == 0 else { throw .file(path: path, action: "make the directory", errno: errno) }
        return path
    }

    func publish(_ staging: String, as key: String, info: [(name: String, value: String)]) throws(Error) {
        let text = info.map { "\($0.name)=\($0.value)\n" }.joined()
        let infoPath = staging + "/info"
        let fd = open(infoPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .file(path: infoPath, action: "create", errno: errno) }
        let written = text.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        guard written == text.utf8.count else { throw .file(path: infoPath, action: "write", errno: errno) }
        let final = directory + "/" + key
        try? Self.removeTree(final)
        guard rename(staging, final) == 0 else { throw .file(path: final, action: "rename a template to", errno: errno) }
    }

    static func removeTree(_ path: String) throws(Error) {
        if let stream = opendir(path) {
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != ".", name != ".." { unlink(path + "/" + name) }
            }
            closedir(stream)
        }
        guard rmdir(path) == 0 || errno == ENOENT else { throw .file(path: path, action: "remove", errno: errno) }
    }

    private static func readInfo(_ path: String) -> [(name: String, value: String)] {
        guard let file = try? InputFile(path, kinds: .regular), file.status.st_size < 65536 else { return [] }
        var bytes = [UInt8](repeating: 0, count: Int(file.status.st_size))
        let count = bytes.withUnsafeMutableBytes { read(file.fd, $0.baseAddress, $0.count) }
        return String(decoding: bytes.prefix(max(0, count)), as: UTF8.self).split(separator: "\n").compactMap { line in
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
    }
}
