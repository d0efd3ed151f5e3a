import Glibc
import Memory

/// A file a run writes: the console log, a profile. Opened without blocking and only as a
/// regular file or a character device (/dev/null): a FIFO would hold its writer until a
/// reader came, and a block device or directory is no place for a log. Never one of the
/// run's own files (same device and inode, whatever the path): emptying it would destroy
/// the kernel or a disk. Opening leaves the file as it was; `truncate(to: 0)` empties it,
/// once every output of the run has been opened.
package final class OutputFile: Sendable {
    /// Why an output cannot be opened or written; the messages say what the file is for.
    package enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case cannotOpen(role: String, path: String, reason: String)
        case cannotWrite(role: String, path: String, reason: String)

        package var description: String {
            switch self {
            case .cannotOpen(let role, let path, let reason): return "cannot open \(role) \(path): \(reason)"
            case .cannotWrite(let role, let path, let reason): return "cannot write \(role) \(path): \(reason)"
            }
        }
    }

    package let path: String
    /// What the file is for, as messages name it: "the console log", "the profile".
    package let role: String
    /// A regular file, which can be cut; otherwise a character device.
    package let isRegular: Bool
    /// Where the file lives, so that a later output of the run is never this one.
    package let identity: InputFile.Identity
    let fd: Int32

    /// Opens (or creates) `path` for writing unless it is one of `others`, the run's inputs
    /// and outputs opened before it, each with its role and path ("the kernel PATH").
    package init(_ path: String, role: String, others: [(role: String, identity: InputFile.Identity)]) throws(OutputFile.Error) {
        let file: InputFile
        do {
            // Read too: a console log that is cut reads its newest part back.
            file = try InputFile(path, flags: O_RDWR | O_CREAT, mode: 0o644, kinds: [.regular, .characterDevice])
        } catch {
            throw .cannotOpen(role: role, path: path, reason: error.reason)
        }
        let identity = file.identity
        if let other = others.first(where: { $0.identity == identity }) {
            throw .cannotOpen(role: role, path: path, reason: "it is \(other.role) of this run")
        }
        self.path = path
        self.role = role
        self.identity = identity
        isRegular = file.status.st_mode & S_IFMT == S_IFREG
        fd = file.take()
    }

    deinit {
        close(fd)
    }

    /// The error for a failed call, from `errno`.
    func failure(_ reason: String = String(cString: strerror(errno))) -> Error {
        .cannotWrite(role: role, path: path, reason: reason)
    }

    /// Writes all of `bytes` at `offset`, or after what was written before when nil. A
    /// write interrupted by the stop's kick gives up once `abandon` says so, silently: the
    /// run is ending anyway. pwritev, not pwrite: a vCPU thread may call it (seccomp).
    package func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64? = nil,
                       abandon: () -> Bool = { false }) throws(OutputFile.Error) {
        var done = 0
        while done < bytes.count {
            let start = UnsafeMutableRawPointer(mutating: bytes.baseAddress! + done)
            var vector = iovec(iov_base: start, iov_len: bytes.count - done)
            let written = if let offset {
                pwritev(fd, &vector, 1, off_t(clamping: offset + UInt64(done)))
            } else {
                Glibc.write(fd, start, bytes.count - done)
            }
            if written < 0 {
                guard errno == EINTR else { throw failure() }
                if abandon() { return }
                continue
            }
            guard written > 0 else { throw failure("the write stopped") }
            done += written
        }
    }

    /// Fills `buffer` from `offset` on, as far as the file goes; the count read.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(OutputFile.Error) -> Int {
        var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        while true {
            let count = preadv(fd, &vector, 1, off_t(clamping: offset))
            if count >= 0 { return count }
            guard errno == EINTR else { throw failure() }
        }
    }

    package func write(_ bytes: ArraySlice<UInt8>, at offset: UInt64? = nil) throws(OutputFile.Error) {
        try bytes.withUnsafeBytes { bytes in Result { () throws(OutputFile.Error) in try write(bytes, at: offset) } }.get()
    }

    /// Cuts a regular file to `size` bytes; a device has no size.
    package func truncate(to size: UInt64) throws(OutputFile.Error) {
        guard isRegular else { return }
        while ftruncate(fd, off_t(clamping: size)) != 0 {
            guard errno == EINTR else { throw failure() }
        }
    }
}
