@testable import Devices
import Glibc
@testable import Memory
import Testing

/// virtio-9p against a simulated driver: messages split across buffers as Linux's
/// zero-copy path splits them, and messages no client would send.
@Suite struct Virtio9PTests {
    var driver: SimulatedDriver
    let directory = TemporaryDirectory()
    let device: Virtio9P
    let interrupt = RecordingInterrupt()

    static let request: UInt64 = 0x10000
    static let header: UInt64 = 0x20000
    static let data: UInt64 = 0x30000

    init() throws {
        driver = try SimulatedDriver(size: 16)
        device = Virtio9P(directory: try SharedDirectory(path: directory.path, readOnly: false), tag: "src")
        device.activate(queues: [try driver.queue()], features: Virtio9P.Feature.mountTag, interrupt: interrupt)
    }

    /// Sends `bytes` in one readable buffer with `writable` (address, length) buffers for
    /// the answer; returns the answer's first bytes and the used length.
    mutating func exchange(_ bytes: [UInt8], writable: [(UInt64, UInt32)] = [(header, 4096)],
                           extra: [(UInt64, UInt32)] = []) throws -> (response: [UInt8], written: UInt32) {
        try driver.memory.write(bytes, at: GuestAddress(Self.request))
        try driver.post([(Self.request, UInt32(bytes.count), false)] + extra.map { ($0.0, $0.1, false) } + writable.map { ($0.0, $0.1, true) })
        device.queueNotified(0)
        let used = try driver.usedElement(try driver.usedIndex() &- 1)
        return (try driver.memory.read(at: GuestAddress(writable[0].0), count: Int(writable[0].1)), used.length)
    }

    mutating func send(_ request: NinePRequest, tag: UInt16 = 1) throws -> NinePResponse {
        let (bytes, _) = try exchange(request.encode(tag: tag))
        let decoded = try NinePResponse.decode(bytes)
        #expect(decoded.tag == tag)
        return decoded.response
    }

    mutating func mount() throws {
        #expect(try send(.version(msize: 512_000, version: NineP.version), tag: NineP.noTag) == .version(msize: 512_000, version: NineP.version))
        guard case .attach = try send(.attach(fid: 0, authFid: NineP.noFid, user: "root", tree: "", numericUser: 0)) else {
            Issue.record("attach failed"); return
        }
    }

    @Test func configurationSpaceCarriesTheTag() {
        var bytes = [UInt8](repeating: 0xff, count: 8)
        bytes.withUnsafeMutableBytes { device.readConfiguration(offset: 0, into: $0) }
        #expect(bytes == [3, 0] + Array("src".utf8) + [0, 0, 0])
        #expect(device.deviceType == 9 && device.deviceFeatures & Virtio9P.Feature.mountTag != 0)
    }

    @Test mutating func aReadLandsInTheGuestsBuffersAfterTheHeader() throws {
        let contents = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let fd = open(directory.path + "/big", O_WRONLY | O_CREAT, 0o644)
        _ = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        try mount()
        _ = try send(.walk(fid: 0, newFid: 1, names: ["big"]))
        guard case .lopen = try send(.lopen(fid: 1, flags: UInt32(O_RDONLY))) else { Issue.record("open failed"); return }
        // As Linux's zero-copy read lays it out: 11 bytes for the header, then the pages.
        let (bytes, written) = try exchange(NinePRequest.read(fid: 1, offset: 1000, count: 65536).encode(tag: 5),
                                            writable: [(Self.header, 11), (Self.data, 40000), (Self.data + 40000, 40000)])
        #expect(try NinePResponse.decode(bytes) == (5, .read(count: 65536)))
        #expect(written == 11 + 65536)
        #expect(try driver.memory.read(at: GuestAddress(Self.data), count: 65536) == Array(contents[1000..<66536]))
    }

    @Test mutating func aWriteComesFromTheGuestsBuffersAfterTheHeader() throws {
        try mount()
        _ = try send(.walk(fid: 0, newFid: 1, names: []))
        guard case .lcreate = try send(.lcreate(fid: 1, name: "out", flags: UInt32(O_RDWR), mode: 0o644, gid: 0)) else {
            Issue.record("create failed"); return
        }
        let payload = Array("written through two buffers".utf8)
        try driver.memory.write(Array(payload[..<10]), at: GuestAddress(Self.data))
        try driver.memory.write(Array(payload[10...]), at: GuestAddress(Self.data + 0x1000))
        let (bytes, _) = try exchange(NinePRequest.write(fid: 1, offset: 0, count: UInt32(payload.count)).encode(tag: 6),
                                      extra: [(Self.data, 10), (Self.data + 0x1000, UInt32(payload.count - 10))])
        #expect(try NinePResponse.decode(bytes) == (6, .write(count: UInt32(payload.count))))
        #expect(directory.read("out") == "written through two buffers")
    }

    @Test mutating func brokenMessagesAreAnsweredNotDropped() throws {
        try mount()
        // Cut short: the size field claims more than the chain holds.
        var short = NinePRequest.getattr(fid: 0, mask: 0).encode(tag: 7)
        short.removeLast(4)
        #expect(try NinePResponse.decode(try exchange(short).response) == (7, .error(errno: NineP.Errno.invalid)))
        // Unknown type.
        var unknown = NinePRequest.clunk(fid: 0).encode(tag: 8)
        unknown[4] = 250
        #expect(try NinePResponse.decode(try exchange(unknown).response) == (8, .error(errno: NineP.Errno.notSupported)))
        // Larger than the negotiated msize.
        let huge = NinePRequest.write(fid: 0, offset: 0, count: 600_000).encode(tag: 9)
        try driver.memory.write(huge, at: GuestAddress(0x40000))
        try driver.post([(0x40000, UInt32(huge.count + 600_000), false), (Self.header, 64, true)])
        device.queueNotified(0)
        #expect(try NinePResponse.decode(try driver.memory.read(at: GuestAddress(Self.header), count: 64))
                == (9, .error(errno: NineP.Errno.messageTooLong)))
        // Too short to carry a tag: answered under NOTAG.
        #expect(try NinePResponse.decode(try exchange([1, 2, 3]).response) == (NineP.noTag, .error(errno: NineP.Errno.invalid)))
        // No room for the answer: the chain comes back empty.
        let (_, written) = try exchange(NinePRequest.getattr(fid: 0, mask: 0).encode(tag: 10), writable: [(Self.header, 8)])
        #expect(written == 0)
        #expect(interrupt.recorded.allSatisfy { $0 == "used" })
    }
}
