import CLinux
import Glibc
import Memory

/// A snapshot's memory file, open read-only for as long as the VM restored from it runs.
/// Guest RAM is mapped from it MAP_PRIVATE, so that VMs restored from one file share the
/// pages none of them wrote; the pages a guest has only read are the file's own, and a
/// change to the file would reach them. So it holds a read lease (F_SETLEASE): a process
/// that opens the file to write or truncates it waits until the lease is given up, and
/// this process is told first and ends the VM (`MemoryFileGuard`). The file therefore
/// never changes under a running guest; a file that cannot be leased is refused.
final class MemoryFile {
    let path: String
    let size: UInt64
    private let fd: Int32
    private var watch: Int?

    /// Opens `path` without blocking (a FIFO or device is refused), checks that it holds
    /// exactly `size` bytes and leases it.
    init(path: String, size: UInt64) throws(SnapshotError) {
        let file: InputFile
        do throws(InputFile.Error) {
            file = try InputFile(path, flags: O_RDONLY, kinds: .regular)
        } catch {
            throw .memoryFile(path: path, reason: error.reason)
        }
        guard UInt64(clamping: file.status.st_size) == size else {
            throw .memoryFile(path: path, reason: "it holds \(file.status.st_size) bytes, and the snapshot's guest has \(size)")
        }
        let fd = file.take()
        // The break is told with SIGIO carrying the descriptor (F_SETSIG), set before the lease exists.
        guard fcntl(fd, CLINUX_F_SETSIG, SIGIO) == 0, fcntl(fd, CLINUX_F_SETLEASE, Int32(F_RDLCK)) == 0 else {
            let error = errno
            close(fd)
            throw .memoryFile(path: path, reason: error == EAGAIN
                ? "another process has it open for writing"
                : "cannot lease it (F_SETLEASE: \(String(cString: strerror(error)))); restore as its owner, on a local file system")
        }
        self.path = path
        self.size = size
        self.fd = fd
    }

    deinit {
        if let watch { MemoryFileGuard.release(watch) }
        close(fd)
    }

    /// Guest RAM mapped privately from the file, watched from now on.
    func map() throws -> GuestMemory {
        let memory = try GuestMemory(size: size, privatelyMapping: fd)
        // Unwatched, a lease break would go unanswered and the change land after the kernel's wait.
        guard let watch = MemoryFileGuard.watch(fd: fd, path: path, memory: memory) else {
            throw SnapshotError.memoryFile(path: path, reason: "this process already runs \(MemoryFileGuard.capacity) restored VMs")
        }
        self.watch = watch
        return memory
    }
}
