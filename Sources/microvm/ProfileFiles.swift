import Glibc
import VMM

/// The files `--profile FILE` writes: the flat profile, and FILE.folded. Both are opened
/// before the VM is built, so that a path that cannot be written fails the run at once, and
/// removed again when the VM cannot be built.
struct ProfileFiles {
    let path: String
    let flat: Int32
    let folded: Int32

    init(path: String) throws {
        self.path = path
        func create(_ path: String) throws -> Int32 {
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw RunCommand.BadArgument(description: "--profile: cannot write \(path): \(String(cString: strerror(errno)))") }
            return fd
        }
        flat = try create(path)
        do {
            folded = try create(path + ".folded")
        } catch {
            close(flat)
            throw error
        }
    }

    func discard() {
        close(flat)
        close(folded)
        unlink(path)
        unlink(path + ".folded")
    }

    func write(_ profile: GuestProfile) {
        for (fd, text) in [(flat, profile.flat()), (folded, profile.folded)] {
            Array(text.utf8).withUnsafeBytes { ConsoleOutput.writeAll(fd, $0) }
            close(fd)
        }
    }
}
