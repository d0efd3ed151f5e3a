import Foundation
import Runtime

/// An echo server on a Unix socket, for the guest's vsock connections to the host.
final class UnixEcho: @unchecked Sendable {
    private let listener: Int32
    private let total = NSLock()
    private var count = 0

    var echoed: Int { total.withLock { count } }

    init(path: String) throws {
        listener = try UnixSocket.listen(at: path)
        let listener = self.listener
        _ = fcntl(listener, F_SETFL, 0)
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }
                Thread.detachNewThread { [self] in
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    while true {
                        let got = read(client, &buffer, buffer.count)
                        guard got > 0 else { break }
                        LoopbackServer.writeAll(client, Data(buffer[0..<got]))
                        total.withLock { count += got }
                    }
                    close(client)
                }
            }
        }
    }

    deinit {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}
