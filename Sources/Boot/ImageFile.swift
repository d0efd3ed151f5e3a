import Glibc

/// Reads a whole kernel or initrd file, refusing what cannot be one (directories,
/// devices, empty files) with a message naming the file.
enum ImageFile {
    static func read(_ path: String, largest: UInt64 = 1 << 32) throws(BootError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable(file: path, reason: String(cString: strerror(errno))) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            let kind = info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file"
            throw .unreadable(file: path, reason: "it is \(kind)")
        }
        let size = UInt64(info.st_size)
        guard size > 0 else { throw .unreadable(file: path, reason: "the file is empty") }
        guard size <= largest else { throw .unreadable(file: path, reason: "the file is larger than \(largest) bytes") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, $0.count - done) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw .unreadable(file: path, reason: count == 0 ? "the file shrank while being read" : String(cString: strerror(errno)))
            }
            done += count
        }
        return bytes
    }
}
