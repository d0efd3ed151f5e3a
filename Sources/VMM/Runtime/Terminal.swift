import Glibc

/// A terminal put into raw mode for the guest's console, and put back exactly as it was.
final class Terminal {
    let fd: Int32
    private var saved: termios?

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
        cfmakeraw(&settings)
        tcsetattr(fd, TCSANOW, &settings)
    }

    func restore() {
        guard var settings = saved else { return }
        tcsetattr(fd, TCSANOW, &settings)
        saved = nil
    }

    deinit {
        restore()
    }
}
