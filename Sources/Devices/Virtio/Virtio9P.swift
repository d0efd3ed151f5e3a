import Memory
import Synchronization

/// virtio-9p (virtio 1.2, section 5.16): a host directory served over 9P2000.L on one
/// request queue, or several, each the export a mount's aname names
/// (`mount -t 9p -o trans=virtio,aname=NAME TAG`). Each chain holds one T-message
/// (readable) and room for its answer (writable); both may be split across buffers
/// anywhere, as Linux's zero-copy reads and writes do. A Tread's data goes from the file straight into the guest's buffers
/// and a Twrite's from them to the file: what one request costs the host is the
/// message header, never the data, and at most the negotiated msize.
public final class Virtio9P: VirtioDevice, Sendable {
    public static let queueSize: UInt16 = 128
    /// Longest mount tag (QEMU's limit; the tag travels in config space and on the kernel command line).
    public static let maximumTagLength = 255

    public enum Feature {
        public static let mountTag: UInt64 = 1 << 0
    }

    struct State {
        var served = ServedQueue()
        // Its fids and open files outlive a device reset only until the client's next
        // Tversion, which Linux sends first whenever it mounts.
        let server: NinePServer
    }

    public let tag: String
    private let state: Mutex<State>

    public var deviceType: UInt32 { 9 }
    public var maximumQueueSizes: [UInt16] { [Self.queueSize] }
    public var deviceFeatures: UInt64 { Feature.mountTag }

    /// Serves `directory` to every mount, whatever its aname. `tag` is the name the guest
    /// mounts (`mount -t 9p TAG`): 1 to 255 bytes.
    public init(directory: SharedDirectory, tag: String) {
        precondition((1...Self.maximumTagLength).contains(tag.utf8.count), "the caller checks the tag's length")
        self.tag = tag
        state = Mutex(State(server: NinePServer(directory: directory)))
    }

    /// Serves exports by name: a mount reaches the one its aname names, exactly; an unknown
    /// aname is refused (ENOENT), and so is an empty one unless `top` is given (an empty
    /// directory): then a mount with no aname reaches every export as a directory of that
    /// name (Linux mounts a virtio-9p device once). `exports` may be bound later (`bind(exports:)`).
    public init(tag: String, exports: [String: SharedDirectory] = [:], top: SharedDirectory? = nil) throws(NinePExportError) {
        precondition((1...Self.maximumTagLength).contains(tag.utf8.count), "the caller checks the tag's length")
        self.tag = tag
        state = Mutex(State(server: try NinePServer(exports: exports, top: top)))
    }

    /// Replaces the exports of a share made with `init(tag:exports:)`, from any thread: what
    /// the next mounts reach. A mount made already stays on the directories it reached. A
    /// restored share needs its exports bound before `restoreState`, which puts each fid
    /// back on its export by name. Names are 1 to 64 bytes of A-Z, a-z, 0-9, '.', '_' and '-'.
    public func bind(exports: [String: SharedDirectory]) throws(NinePExportError) {
        try state.withLock { state throws(NinePExportError) in try state.server.bind(exports: exports) }
    }

    /// The session's fids and open files, over all exports (for tests and diagnostics).
    var fidCount: Int { state.withLock { $0.server.fidCount } }
    var openFileCount: Int { state.withLock { $0.server.openFileCount } }

    public func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        var configuration = [UInt8](repeating: 0, count: 2)
        configuration.storeLittleEndian(UInt16(tag.utf8.count), at: 0)
        configuration += tag.utf8
        for index in 0..<data.count {
            let position = offset + index
            data[index] = position >= 0 && position < configuration.count ? configuration[position] : 0
        }
    }

    public func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        state.withLock { $0.served = ServedQueue(queue: queues[0], interrupt: interrupt) }
    }

    public func queueNotified(_ index: Int) {
        state.withLock { state in
            let server = state.server
            return state.served.serveAvailable { chain, queue throws(VirtqueueError) in
                let (readable, writable) = try queue.buffers(of: chain)
                return UInt32(serve(readable, writable, server))
            }
        }?()
    }

    public func reset() {
        state.withLock { $0.served = ServedQueue() }
    }

    /// Answers the request in `readable` into `writable`; returns the bytes written. A
    /// request that cannot be parsed gets an Rlerror under its tag; one too short to
    /// carry a tag is answered under NOTAG.
    func serve(_ readable: GuestBuffers, _ writable: GuestBuffers, _ server: NinePServer) -> Int {
        let limit = server.messageSize
        var message = readable.prefix(NinePRequest.writeHeaderSize)
        let header = NinePRequest.header(of: message)
        let tag = header?.tag ?? NineP.noTag
        let response: NinePResponse
        do throws(NinePCodecError) {
            guard let header, header.size <= readable.count else { throw .truncated }
            if header.type != NinePRequest.MessageType.write {
                message = readable.prefix(min(header.size, limit + 1))
            }
            let (_, request) = try NinePRequest.decode(message, limit: header.type == NinePRequest.MessageType.version ? .max : limit)
            switch request {
            case .read(_, _, let count):
                let room = max(0, writable.count - NinePResponse.readHeaderSize)
                response = server.handle(request, into: writable.slices(from: NinePResponse.readHeaderSize,
                                                                        length: min(Int(count), room)))
            case .write(_, _, let count):
                let data = readable.slices(from: NinePRequest.writeHeaderSize, length: Int(count))
                response = server.handle(request, data: data.map { UnsafeRawBufferPointer($0) })
            default:
                response = server.handle(request)
            }
        } catch {
            response = .error(errno: error.errno)
        }
        var bytes = response.encode(tag: tag)
        if bytes.count > writable.count {
            // No room for the answer: say so, in the 11 bytes an Rlerror takes, if even those fit.
            bytes = NinePResponse.error(errno: NineP.Errno.messageTooLong).encode(tag: tag)
            guard bytes.count <= writable.count else { return 0 }
        }
        writable.write(bytes)
        if case .read(let count) = response { return bytes.count + Int(count) }
        return bytes.count
    }
}

extension Virtio9P {
    /// The share's tag, then the session. Its fids are paths beneath the directory the tag
    /// names, or beneath exports it names by name; the host directories are whatever the
    /// restore binds to them.
    public func saveState(into writer: inout StateWriter) {
        state.withLock { state in
            writer.put(tag)
            writer.put(state.served.broken)
            state.server.saveState(into: &writer)
        }
    }

    /// Refuses the state of another share: its fids name paths in another export. A share
    /// of exports has them bound first (`bind(exports:)`): each fid goes back on the export
    /// of its name, and one whose export is not bound is refused.
    public func restoreState(from reader: inout StateReader) throws(StateError) {
        guard try reader.string("9p share tag", limit: Self.maximumTagLength) == tag else { throw .invalid(what: "9p share tag") }
        try state.withLock { state throws(StateError) in
            state.served.broken = try reader.bool("9p queue")
            try state.server.restoreState(from: &reader)
        }
    }
}
