import Devices
import Glibc
import Synchronization

/// Serves the guest console on a Unix socket for `microvm attach`: one client at a
/// time, the most recent output kept in a ring so a late client sees it, and a
/// client that leaves does not stop the guest.
final class ConsoleSocketServer: @unchecked Sendable {
    static let historySize = 64 * 1024
    static let refusal = Array("microvm: another client is attached to this console\r\n".utf8)

    let path: String
    let listener: Int32

    private struct State {
        var client: Int32?
        var history = ByteQueue(capacity: ConsoleSocketServer.historySize)
    }

    private let state = Mutex(State())

    init(path: String) throws(UnixSocket.Error) {
        self.path = path
        listener = try UnixSocket.listen(at: path)
    }

    deinit {
        state.withLock { state in
            if let client = state.client { close(client) }
        }
        close(listener)
        unlink(path)
    }

    /// The connected client's fd, for the event loop to poll.
    var client: Int32? { state.withLock { $0.client } }

    /// Guest output: remembered, and sent to the client if one is attached. A client
    /// too slow to keep up loses bytes rather than stalling the guest.
    func write(_ bytes: UnsafeRawBufferPointer) {
        state.withLock { state in
            state.history.pushDroppingOldest(bytes)
            if let client = state.client {
                Self.sendWithoutWaiting(client, bytes)
            }
        }
    }

    /// Accepts a waiting connection: the first becomes the client and gets the history,
    /// any other is told the console is taken and closed.
    func acceptClient() {
        let fd = accept(listener, nil, nil)
        guard fd >= 0 else { return }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        state.withLock { state in
            if state.client != nil {
                Self.refusal.withUnsafeBytes { Self.sendWithoutWaiting(fd, $0) }
                close(fd)
                return
            }
            state.client = fd
            state.history.contents.withUnsafeBytes { Self.sendWithoutWaiting(fd, $0) }
        }
    }

    /// A client that cannot take the bytes now, or has gone, loses them: the guest never waits.
    private static func sendWithoutWaiting(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        _ = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
    }

    /// Reads what the client typed; nil once it has gone (and it is then dropped).
    func readClient() -> [UInt8]? {
        guard let fd = client else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return [] }
        guard count > 0 else {
            state.withLock { state in
                if state.client == fd {
                    close(fd)
                    state.client = nil
                }
            }
            return nil
        }
        return Array(buffer[0..<count])
    }
}
