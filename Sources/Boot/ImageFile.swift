import Glibc
import Memory

/// A kernel, initrd or symbol file, opened without blocking and checked: refuses what
/// cannot be one (directories, FIFOs, devices, empty files) with a message naming the
/// file. Its bytes are read once, into an array or straight into guest memory.
struct ImageFile: ~Copyable {
    let path: String
    let size: Int
    private let fd: Int32

    init(_ path: String, largest: UInt64 = 1 << 32) throws(BootError) {
        let file: InputFile
        do {
            file = try InputFile(path, kinds: .regular)
        } catch {
            throw .unreadable(file: path, reason: error.reason)
        }
        guard file.status.st_size > 0 else { throw .unreadable(file: path, reason: "the file is empty") }
        guard UInt64(file.status.st_size) <= largest else {
            throw .unreadable(file: path, reason: "the file is larger than \(largest) bytes")
        }
        self.path = path
        size = Int(file.status.st_size)
        fd = file.take()
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
