import Glibc

/// One file of a snapshot being written: created as `PATH.partial` with O_EXCL and
/// O_NOFOLLOW, so that nothing already there is followed or truncated (a symbolic link
/// planted to send the write elsewhere, a leftover of an interrupted snapshot, another
/// snapshot to the same path under way), then synced and renamed over PATH. A VM restored
/// from an older snapshot at PATH keeps the file it opened. Removed unless committed.
final class SnapshotOutput {
    let path: String
    let temporary: String
    private let fd: Int32
    private var committed = false

    init(_ path: String) throws(SnapshotError) {
        temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw errno == EEXIST ? .leftover(path: temporary) : .file(path: temporary, action: "create", errno: errno)
        }
        self.path = path
        self.fd = fd
    }

    deinit {
        close(fd)
        if !committed { unlink(temporary) }
    }

    /// Hands the open file to `body`, which writes it whole.
    func write(_ body: (Int32) throws(SnapshotError) -> Void) throws(SnapshotError) {
        try body(fd)
    }

    func write(_ bytes: [UInt8]) throws(SnapshotError) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw .file(path: temporary, action: "write", errno: result < 0 ? errno : EIO) }
            written += result
        }
    }

    /// Syncs the file and renames it over `path`.
    func commit() throws(SnapshotError) {
        guard fsync(fd) == 0 else { throw .file(path: temporary, action: "sync", errno: errno) }
        guard rename(temporary, path) == 0 else { throw .file(path: path, action: "rename \(temporary) to", errno: errno) }
        committed = true
    }
}
