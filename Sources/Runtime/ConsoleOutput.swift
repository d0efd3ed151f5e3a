import Glibc
import Synchronization

/// Where the guest's console output goes: a file descriptor (the terminal or a
/// pipe), the console socket or nowhere, and, once the VM is built, a log file that
/// gets a copy.
package final class ConsoleOutput: @unchecked Sendable {
    private let fd: Int32?
    private let socket: ConsoleSocketServer?
    private let log = Mutex<ConsoleLog?>(nil)
    private let abandon: @Sendable () -> Bool
    private let logFailed: @Sendable (OutputFile.Error) -> Void

    /// A write that cannot finish is given up once `abandon` returns true (the VM is
    /// stopping), so a reader that stopped reading cannot hold the VM. `logFailed` gets
    /// the log's first write that fails, after which nothing more is logged.
    init(fd: Int32? = STDOUT_FILENO, socket: ConsoleSocketServer? = nil,
         abandon: @escaping @Sendable () -> Bool = { false },
         logFailed: @escaping @Sendable (OutputFile.Error) -> Void = { _ in }) {
        self.fd = fd
        self.socket = socket
        self.abandon = abandon
        self.logFailed = logFailed
    }

    /// Copies the output to `log` from now on.
    func startLog(_ log: ConsoleLog) {
        self.log.withLock { $0 = log }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        if let socket {
            socket.write(bytes)
        } else if let fd {
            Self.writeAll(fd, bytes, abandon: abandon)
        }
        do throws(OutputFile.Error) {
            try log.withLock { $0 }?.write(bytes, abandon: abandon)
        } catch {
            logFailed(error)
        }
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
