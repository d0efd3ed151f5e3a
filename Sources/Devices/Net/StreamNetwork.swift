import Glibc

/// A network backend over a connected Unix stream socket that carries each frame as a
/// 4-byte big-endian length and the frame: passt's protocol (QEMU's `-netdev stream`).
/// Nothing blocks: frames are read into a buffer of one frame's size, and what of a sent
/// frame the socket cannot take now waits in a buffer of the same size (a frame cut short
/// would break the stream) until it can.
public final class StreamNetwork: NetworkBackend, @unchecked Sendable {
    public var carriesHeader: Bool { false }
    public let descriptor: Int32
    /// The frame being read: its length prefix, then its bytes. Only the receiving thread uses it.
    private var prefix = [UInt8](repeating: 0, count: 4)
    private var prefixRead = 0
    private var body: [UInt8]
    private var bodyRead = 0
    private var closed = false
    /// The part of the last frame sent that the peer has not taken yet, prefix included,
    /// from `outboxStart` to `outboxEnd`. Only the sending thread uses it.
    private var outbox: [UInt8]
    private var outboxStart = 0
    private var outboxEnd = 0
    private var sendFailed = false

    /// IOV_MAX: the most parts one sendmsg takes.
    static let maximumVectors = 1024

    /// Takes ownership of `socket`.
    public init(socket: Int32, maximumFrame: Int = VirtioNet.maximumFrameLength) {
        descriptor = socket
        body = [UInt8](repeating: 0, count: maximumFrame)
        outbox = [UInt8](repeating: 0, count: 4 + maximumFrame)
    }

    deinit {
        close(descriptor)
    }

    public func acceptOffloads(_ features: UInt64) {}

    public func readyToSend() -> Bool {
        while outboxStart < outboxEnd && !sendFailed {
            let sent = outbox.withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress! + outboxStart, outboxEnd - outboxStart, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if sent < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return false }
                sendFailed = true
            } else {
                outboxStart += sent
            }
        }
        return true
    }

    public func send(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        let total = parts.reduce(0) { $0 + $1.count }
        guard !sendFailed else { return false }
        // A caller that did not wait for `readyToSend`, or a frame larger than any: dropped.
        guard readyToSend(), total <= outbox.count - 4 else { return !sendFailed }
        var length = UInt32(total).bigEndian
        var sent = 0
        withUnsafeBytes(of: &length) { prefix in
            var vectors = ([prefix] + parts).map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
            var message = msghdr()
            // More parts than sendmsg takes (a chain may have 1,024 buffers): all of it goes
            // through the outbox.
            while vectors.count <= Self.maximumVectors {
                sent = vectors.withUnsafeMutableBufferPointer { pointer in
                    message.msg_iov = pointer.baseAddress
                    message.msg_iovlen = pointer.count
                    return sendmsg(descriptor, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                guard sent < 0 && errno == EINTR else { break }
            }
            if sent < 0 {
                guard errno == EAGAIN || errno == EWOULDBLOCK else { return }
                sent = 0
            }
            // Keep the rest: the prefix and the parts from byte `sent` on.
            var skip = sent
            outboxStart = 0
            outboxEnd = 0
            outbox.withUnsafeMutableBytes { box in
                for part in [prefix] + parts {
                    let from = min(skip, part.count)
                    skip -= from
                    let count = part.count - from
                    guard count > 0 else { continue }
                    (box.baseAddress! + outboxEnd).copyMemory(from: part.baseAddress! + from, byteCount: count)
                    outboxEnd += count
                }
            }
        }
        if sent < 0 { sendFailed = true }
        _ = readyToSend()
        return !sendFailed
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
