import Glibc

/// A network backend over a connected Unix stream socket that carries each frame as a
/// 4-byte big-endian length and the frame: passt's protocol (QEMU's `-netdev stream`).
/// Frames are read without blocking into a buffer of one frame's size; sends block,
/// since a frame half-written would break the stream, and give up only when `abandon`
/// says the VM is stopping.
public final class StreamNetwork: NetworkBackend, @unchecked Sendable {
    public var carriesHeader: Bool { false }
    public let descriptor: Int32
    private let abandon: @Sendable () -> Bool
    /// The frame being read: its length prefix, then its bytes. Only the receiving thread uses it.
    private var prefix = [UInt8](repeating: 0, count: 4)
    private var prefixRead = 0
    private var body: [UInt8]
    private var bodyRead = 0
    private var closed = false

    /// Takes ownership of `socket`.
    public init(socket: Int32, maximumFrame: Int = VirtioNet.maximumFrameLength, abandon: @escaping @Sendable () -> Bool = { false }) {
        descriptor = socket
        self.abandon = abandon
        body = [UInt8](repeating: 0, count: maximumFrame)
    }

    deinit {
        close(descriptor)
    }

    public func acceptOffloads(_ features: UInt64) {}

    public func send(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        var length = UInt32(parts.reduce(0) { $0 + $1.count }).bigEndian
        return withUnsafeBytes(of: &length) { prefix in
            var vectors = ([prefix] + parts).map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
            var first = 0
            while first < vectors.count {
                let sent = vectors[first...].withUnsafeMutableBufferPointer { pointer -> Int in
                    var message = msghdr()
                    message.msg_iov = pointer.baseAddress
                    message.msg_iovlen = min(pointer.count, 1024)
                    return sendmsg(descriptor, &message, Int32(MSG_NOSIGNAL))
                }
                if sent < 0 {
                    if errno == EINTR && !abandon() { continue }
                    return false
                }
                var left = sent
                while first < vectors.count && left >= vectors[first].iov_len {
                    left -= vectors[first].iov_len
                    first += 1
                }
                if left > 0 {
                    vectors[first].iov_base += left
                    vectors[first].iov_len -= left
                }
            }
            return true
        }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard !closed else { return nil }
        while prefixRead < 4 {
            let count = prefix.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + prefixRead, 4 - prefixRead, Int32(MSG_DONTWAIT)) }
            guard let count = settle(count) else { return nil }
            guard count > 0 else { return 0 }
            prefixRead += count
        }
        let length = Int(UInt32(prefix[0]) << 24 | UInt32(prefix[1]) << 16 | UInt32(prefix[2]) << 8 | UInt32(prefix[3]))
        guard length <= body.count else {
            // The peer broke the framing (no backend sends more than 64 KiB): the stream is lost.
            closed = true
            return nil
        }
        while bodyRead < length {
            let count = body.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress! + bodyRead, length - bodyRead, Int32(MSG_DONTWAIT)) }
            guard let count = settle(count) else { return nil }
            guard count > 0 else { return 0 }
            bodyRead += count
        }
        prefixRead = 0
        bodyRead = 0
        guard length <= buffer.count else { return 0 }
        body.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: length) }
        return length
    }

    /// A recv result as bytes read, 0 for none now, or nil when the stream has ended.
    private func settle(_ count: Int) -> Int? {
        if count > 0 { return count }
        if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return 0 }
        closed = true
        return nil
    }
}
