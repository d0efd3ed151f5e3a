import Foundation
import Runtime

/// A Unix socket that stands in for passt: it accepts one connection and reads what
/// arrives, either at once (dropping it) or, when `stalled`, not before `collect`.
final class UnixSink: @unchecked Sendable {
    let path: String
    private let listener: Int32
    private let lock = NSLock()
    private var client: Int32?

    init(path: String, stalled: Bool = false) throws {
        self.path = path
        listener = try UnixSocket.listen(at: path)
        let listener = self.listener
        _ = fcntl(listener, F_SETFL, 0)
        Thread.detachNewThread { [self] in
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            guard !stalled else {
                lock.withLock { self.client = client }
                return
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            while read(client, &buffer, buffer.count) > 0 {}
            close(client)
        }
    }

    /// Everything the stalled peer was sent, read to the end of the stream.
    func collect() -> [UInt8] {
        guard let client = lock.withLock({ client }) else { return [] }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(client, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    deinit {
        if let client { close(client) }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }
}
