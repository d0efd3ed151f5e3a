import Glibc

/// The client side of the control socket, for `microvm ctl` and for tests.
public enum ControlClient {
    public struct Error: Swift.Error, CustomStringConvertible {
        public let description: String
    }

    /// Sends `request` and waits for its one-line answer.
    public static func send(_ request: ControlRequest, to path: String) throws -> JSONObject {
        let fd = try UnixSocket.connect(to: path)
        defer { close(fd) }
        let line = Array((request.encoded + "\n").utf8)
        var sent = 0
        while sent < line.count {
            let result = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw Error(description: "cannot send to \(path): \(String(cString: strerror(errno)))") }
            sent += result
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(0x0a) {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw Error(description: "the VM at \(path) closed the connection without an answer") }
            answer += buffer[0..<count]
            guard answer.count <= 1 << 16 else { throw Error(description: "the answer from \(path) is too long") }
        }
        return try JSONObject.parse(answer[..<answer.firstIndex(of: 0x0a)!])
    }
}
