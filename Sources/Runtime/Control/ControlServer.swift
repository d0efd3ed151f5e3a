import Glibc

/// The control socket's listener and clients. The event loop polls them and calls
/// `handle` for each complete line; what a client can make the VMM hold is bounded:
/// a few clients, one line of at most `maximumLineLength` bytes each.
final class ControlServer {
    static let maximumClients = 4
    static let maximumLineLength = 4096

    let path: String
    let listener: Int32
    private(set) var clients: [Int32: [UInt8]] = [:]

    init(path: String) throws(UnixSocket.Error) {
        self.path = path
        listener = try UnixSocket.listen(at: path)
    }

    deinit {
        for fd in clients.keys { close(fd) }
        close(listener)
        unlink(path)
    }

    func accept() {
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { return }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        guard clients.count < Self.maximumClients else {
            send(fd, JSONObject([("ok", .bool(false)), ("error", .string("too many control clients"))]))
            close(fd)
            return
        }
        clients[fd] = []
    }

    /// Reads what `fd` sent and answers each complete line with `handle`'s object.
    func read(_ fd: Int32, handle: (Result<ControlRequest, JSONObject.ParseError>) -> JSONObject) {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count < 0 && (errno == EINTR || errno == EAGAIN) { return }
        guard count > 0, var pending = clients[fd] else {
            drop(fd)
            return
        }
        pending += buffer[0..<count]
        while let newline = pending.firstIndex(of: 0x0a) {
            let line = pending[..<newline]
            pending.removeSubrange(...newline)
            send(fd, handle(ControlRequest.parse(line)))
        }
        guard pending.count <= Self.maximumLineLength else {
            send(fd, JSONObject([("ok", .bool(false)), ("error", .string("request line longer than \(Self.maximumLineLength) bytes"))]))
            drop(fd)
            return
        }
        clients[fd] = pending
    }

    private func send(_ fd: Int32, _ object: JSONObject) {
        let line = Array((object.encoded + "\n").utf8)
        // An answer is a few hundred bytes: a client whose socket cannot take it is gone.
        _ = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
    }

    private func drop(_ fd: Int32) {
        clients[fd] = nil
        close(fd)
    }
}
