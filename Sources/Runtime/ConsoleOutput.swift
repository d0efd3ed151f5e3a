import Glibc

/// Where the guest's console output goes: a file descriptor (the terminal or a
/// pipe), the console socket or nowhere, and, optionally, a log file that gets a copy.
package final class ConsoleOutput: @unchecked Sendable {
    private let fd: Int32?
    private let socket: ConsoleSocketServer?
    private let log: Int32?
    private let abandon: @Sendable () -> Bool

    /// Opens (truncating) `logPath` if given. A write that cannot finish is given up
    /// once `abandon` returns true (the VM is stopping), so a reader that stopped
    /// reading cannot hold the VM.
    init(fd: Int32? = STDOUT_FILENO, socket: ConsoleSocketServer? = nil, logPath: String? = nil,
         abandon: @escaping @Sendable () -> Bool = { false }) throws(ConfigurationError) {
        self.fd = fd
        self.socket = socket
        self.abandon = abandon
        if let logPath {
            let logFD = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard logFD >= 0 else {
                throw .consoleLog(path: logPath, reason: String(cString: strerror(errno)))
            }
            log = logFD
        } else {
            log = nil
        }
    }

    deinit {
        if let log { close(log) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        if let socket {
            socket.write(bytes)
        } else if let fd {
            Self.writeAll(fd, bytes, abandon: abandon)
        }
        if let log { Self.writeAll(log, bytes, abandon: abandon) }
    }

    /// Writes everything unless the reader is gone (a closed terminal must not stop the
    /// guest) or `abandon` says to give up; an interrupted or full write asks it again.
    package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, abandon: () -> Bool = { false }) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if abandon() { return }
                if errno == EINTR { continue }
                if errno == EAGAIN {
                    var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    poll(&descriptor, 1, 100)
                    continue
                }
                return
            }
            offset += written
        }
    }
}
