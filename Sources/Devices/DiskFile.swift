import Glibc
import Memory

/// A raw disk image file, read and written with preadv/pwritev.
public final class DiskFile: BlockBackend, @unchecked Sendable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case cannotOpen(path: String, reason: String)
        case readOnlyFile(path: String)

        public var description: String {
            switch self {
            case .cannotOpen(let path, let reason): return "cannot open the disk \(path): \(reason)"
            case .readOnlyFile(let path): return "the disk \(path) is read-only; attach it with ,ro"
            }
        }
    }

    /// How many buffers one preadv/pwritev takes (IOV_MAX).
    private static let vectorLimit = max(16, sysconf(Int32(_SC_IOV_MAX)))

    public let path: String
    public let size: UInt64
    public let isReadOnly: Bool
    private let fd: Int32

    /// Opens `path` read-write, or read-only with `readOnly`: a regular file or a block
    /// device, opened without blocking (a FIFO would wait for a writer for ever).
    public init(path: String, readOnly: Bool) throws(DiskFile.Error) {
        let fd: Int32
        do {
            fd = try InputFile(path, flags: readOnly ? O_RDONLY : O_RDWR, kinds: [.regular, .blockDevice]).take()
        } catch {
            guard !readOnly, !error.isWrongKind else { throw .cannotOpen(path: path, reason: error.reason) }
            // A disk that opens for reading but not for writing (permissions, a read-only
            // mount, an immutable file) can still be attached read-only.
            do {
                _ = try InputFile(path, kinds: [.regular, .blockDevice])
            } catch {
                throw .cannotOpen(path: path, reason: error.reason)
            }
            throw .readOnlyFile(path: path)
        }
        let end = lseek(fd, 0, SEEK_END)
        guard end >= 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .cannotOpen(path: path, reason: reason)
        }
        self.path = path
        self.fd = fd
        self.size = UInt64(end)
        self.isReadOnly = readOnly
    }

    deinit {
        close(fd)
    }

    /// The open file's status, for a snapshot to record without opening the path again
    /// (a jailed VM process cannot).
    public func status() -> stat {
        var status = stat()
        fstat(fd, &status)
        return status
    }

    public func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool {
        transfer(buffers.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }, at: offset) { preadv($0, $1, $2, $3) }
    }

    public func write(_ buffers: [UnsafeRawBufferPointer], at offset: UInt64) -> Bool {
        transfer(buffers.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }, at: offset) {
            pwritev($0, $1, $2, $3)
        }
    }

    public func flush() -> Bool {
        fdatasync(fd) == 0
    }

    /// Moves every byte of `vectors`, resuming after short transfers; false on an error or at end of file.
    private func transfer(_ vectors: [iovec], at offset: UInt64,
                          _ call: (Int32, UnsafePointer<iovec>, Int32, Int) -> Int) -> Bool {
        var vectors = vectors.filter { $0.iov_len > 0 }
        var position = offset
        var first = 0
        while first < vectors.count {
            let count = min(vectors.count - first, Self.vectorLimit)
            let moved = vectors.withUnsafeBufferPointer { call(fd, $0.baseAddress! + first, Int32(count), Int(position)) }
            if moved < 0 && errno == EINTR { continue }
            guard moved > 0 else { return false }
            position += UInt64(moved)
            var left = moved
            while left > 0 && first < vectors.count {
                if left >= vectors[first].iov_len {
                    left -= vectors[first].iov_len
                    first += 1
                } else {
                    vectors[first].iov_base += left
                    vectors[first].iov_len -= left
                    left = 0
                }
            }
        }
        return true
    }
}
