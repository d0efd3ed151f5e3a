import Glibc

/// A kernel, initrd or symbol file, opened and checked: refuses what cannot be one
/// (directories, devices, empty files) with a message naming the file. Its bytes are
/// read once, into an array or straight into guest memory.
struct ImageFile: ~Copyable {
    let path: String
    let size: Int
    private let fd: Int32

    init(_ path: String, largest: UInt64 = 1 << 32) throws(BootError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unreadable(file: path, reason: reason)
        }
        func refuse(_ reason: String) -> BootError {
            close(fd)
            return .unreadable(file: path, reason: reason)
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw refuse("it is \(info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file")")
        }
        guard info.st_size > 0 else { throw refuse("the file is empty") }
        guard UInt64(info.st_size) <= largest else { throw refuse("the file is larger than \(largest) bytes") }
        self.path = path
        self.fd = fd
        size = Int(info.st_size)
    }

    deinit {
        close(fd)
    }

    /// The file's bytes, read on demand.
    var source: ImageFileSource { ImageFileSource(fd: fd, path: path, count: size) }

    /// The whole file in an array, never zero-filled first.
    static func read(_ path: String, largest: UInt64 = 1 << 32) throws(BootError) -> [UInt8] {
        let file = try ImageFile(path, largest: largest)
        return try file.source.bytes(at: 0, count: file.size)
    }

    /// Whether the file starts like an ELF file.
    func startsLikeELF() throws(BootError) -> Bool {
        ELFLoader.matches(try source.bytes(at: 0, count: min(4, size)))
    }
}
