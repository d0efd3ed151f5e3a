import Glibc
import Synchronization

/// A terminal put into raw mode for the guest's console, and put back exactly as it was,
/// also when the process dies of a blocked system call (see `restoreAfterCrash`).
final class Terminal {
    let fd: Int32
    private var saved: termios?

    /// The settings to put back if the process must end in a signal handler: written
    /// before raw mode is set and cleared after it is undone, read without locks there.
    private nonisolated(unsafe) static let crashCopy = UnsafeMutablePointer<termios>.allocate(capacity: 1)
    private static let crashFD = Atomic<Int32>(-1)

    /// nil when `fd` is not a terminal.
    init?(fd: Int32) {
        guard isatty(fd) == 1 else { return nil }
        self.fd = fd
    }

    /// Raw mode: no echo, no line editing, no signals from keys; the guest does all that.
    func makeRaw() {
        var settings = termios()
        guard tcgetattr(fd, &settings) == 0 else { return }
        saved = settings
        Self.crashCopy.pointee = settings
        Self.crashFD.store(fd, ordering: .releasing)
        cfmakeraw(&settings)
        tcsetattr(fd, TCSANOW, &settings)
    }

    func restore() {
        guard var settings = saved else { return }
        tcsetattr(fd, TCSANOW, &settings)
        Self.crashFD.store(-1, ordering: .releasing)
        saved = nil
    }

    /// Puts a raw terminal back from a signal handler: no locks, no allocation, one ioctl.
    static func restoreAfterCrash() {
        let fd = crashFD.load(ordering: .acquiring)
        guard fd >= 0 else { return }
        tcsetattr(fd, TCSANOW, crashCopy)
    }

    deinit {
        restore()
    }
}
