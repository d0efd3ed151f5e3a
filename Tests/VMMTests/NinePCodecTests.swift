@testable import Devices
import Testing

/// The 9P2000.L codec on its own: every message both ways, and what a client (or a
/// hostile guest) can send that is not a message.
@Suite struct NinePCodecTests {
    static let qid = NineP.Qid(type: NineP.Qid.directory, version: 7, path: 0x1122_3344_5566_7788)
    static let lock = NineP.Lock(type: NineP.Lock.writeLock, start: 10, length: 20, processID: 42, clientID: "guest")

    static let requests: [NinePRequest] = [
        .version(msize: 512_000, version: "9P2000.L"),
        .auth(authFid: 1, user: "root", tree: "", numericUser: 0),
        .attach(fid: 0, authFid: NineP.noFid, user: "root", tree: "src", numericUser: 1000),
        .flush(oldTag: 9),
        .walk(fid: 0, newFid: 1, names: ["a", "b", ".."]),
        .walk(fid: 0, newFid: 1, names: []),
        .lopen(fid: 1, flags: 0o2),
        .lcreate(fid: 1, name: "new.txt", flags: 0o101, mode: 0o644, gid: 100),
        .read(fid: 1, offset: 1 << 40, count: 4096),
        .write(fid: 1, offset: 3, count: 5),
        .clunk(fid: 1),
        .remove(fid: 2),
        .getattr(fid: 1, mask: 0x3fff),
        .setattr(fid: 1, NineP.SetAttributes(valid: 0x1ff, mode: 0o600, uid: 1, gid: 2, size: 3,
                                              accessTime: NineP.Time(seconds: 4, nanoseconds: 5),
                                              modificationTime: NineP.Time(seconds: 6, nanoseconds: 7))),
        .readdir(fid: 1, offset: 99, count: 8192),
        .mkdir(directory: 1, name: "dir", mode: 0o755, gid: 0),
        .unlinkat(directory: 1, name: "dir", flags: 0x200),
        .renameat(oldDirectory: 1, oldName: "a", newDirectory: 2, newName: "b"),
        .rename(fid: 3, directory: 1, name: "c"),
        .symlink(directory: 1, name: "link", target: "/etc", gid: 0),
        .readlink(fid: 4),
        .link(directory: 1, fid: 4, name: "hard"),
        .mknod(directory: 1, name: "fifo", mode: 0o10644, major: 0, minor: 0, gid: 0),
        .statfs(fid: 0),
        .fsync(fid: 1, dataOnly: 1),
        .lock(fid: 1, lock, flags: 1),
        .getlock(fid: 1, lock),
        .xattrwalk(fid: 1, newFid: 5, name: "user.x"),
        .xattrcreate(fid: 5, name: "user.x", size: 3, flags: 0),
    ]

    static let responses: [NinePResponse] = {
        var attributes = NineP.Attributes()
        attributes.valid = NineP.Attributes.basic
        attributes.qid = qid
        attributes.mode = 0o40755
        attributes.size = 1 << 33
        attributes.modificationTime = NineP.Time(seconds: 1_700_000_000, nanoseconds: 5)
        let statistics = NineP.FileSystemStatistics(type: 0xef53, blockSize: 4096, blocks: 1, freeBlocks: 2, availableBlocks: 3,
                                                    files: 4, freeFiles: 5, fileSystemID: 6, nameLength: 255)
        var entries: [UInt8] = []
        NineP.DirectoryEntry(qid: qid, offset: 1, type: 4, name: "dir").encode(into: &entries)
        NineP.DirectoryEntry(qid: qid, offset: 2, type: 8, name: "file").encode(into: &entries)
        return [
            .error(errno: NineP.Errno.notSupported), .version(msize: 8192, version: "9P2000.L"), .auth(qid), .attach(qid), .flush,
            .walk([qid, qid]), .walk([]), .lopen(qid, ioUnit: 0), .lcreate(qid, ioUnit: 4096), .read(count: 12), .write(count: 12),
            .clunk, .remove, .getattr(attributes), .setattr, .readdir(data: entries), .mkdir(qid), .unlinkat, .renameat, .rename,
            .symlink(qid), .readlink(target: "../x"), .link, .mknod(qid), .statfs(statistics), .fsync,
            .lock(status: NineP.LockStatus.blocked), .getlock(lock), .xattrwalk(size: 0), .xattrcreate,
        ]
    }()

    @Test func everyRequestSurvivesARoundTrip() throws {
        for (index, request) in Self.requests.enumerated() {
            let tag = UInt16(index)
            var bytes = request.encode(tag: tag)
            if case .write(_, _, let count) = request { bytes += [UInt8](repeating: 0xab, count: Int(count)) }
            let decoded = try NinePRequest.decode(bytes, limit: 1 << 20)
            #expect(decoded.tag == tag)
            #expect(decoded.request == request)
        }
    }

    @Test func everyResponseSurvivesARoundTrip() throws {
        for (index, response) in Self.responses.enumerated() {
            let decoded = try NinePResponse.decode(response.encode(tag: UInt16(index)))
            #expect(decoded.tag == UInt16(index))
            #expect(decoded.response == response)
        }
    }

    @Test func directoryEntriesDecode() throws {
        guard case .readdir(let data) = Self.responses[15] else { Issue.record("not a readdir"); return }
        let entries = try NineP.DirectoryEntry.decode(data)
        #expect(entries.map(\.name) == ["dir", "file"])
        #expect(entries.map(\.offset) == [1, 2])
    }

    @Test func everyTruncationOfEveryRequestIsRefused() {
        for request in Self.requests {
            let bytes = request.encode(tag: 1)
            for length in 0..<bytes.count {
                // Cut both ways: the bytes end early, and the size field says less than the fields need.
                #expect(throws: NinePCodecError.self) { try NinePRequest.decode(Array(bytes.prefix(length)), limit: 1 << 20) }
                guard length >= NineP.headerSize else { continue }
                var short = Array(bytes.prefix(length))
                short.storeLittleEndian(UInt32(length), at: 0)
                #expect(throws: NinePCodecError.self) { try NinePRequest.decode(short, limit: 1 << 20) }
            }
        }
    }

    @Test func aWriteWhoseSizeDisagreesWithItsCountIsRefused() {
        var bytes = NinePRequest.write(fid: 1, offset: 0, count: 100).encode(tag: 1)
        bytes.storeLittleEndian(UInt32(NinePRequest.writeHeaderSize + 99), at: 0)
        #expect(throws: NinePCodecError.truncated) { try NinePRequest.decode(bytes, limit: 1 << 20) }
    }

    @Test func oversizedUnknownAndMalformedMessagesAreRefused() {
        let read = NinePRequest.read(fid: 1, offset: 0, count: 1).encode(tag: 1)
        #expect(throws: NinePCodecError.oversized(size: read.count, limit: read.count - 1)) {
            try NinePRequest.decode(read, limit: read.count - 1)
        }
        var unknown = read
        unknown[4] = 0x99
        #expect(throws: NinePCodecError.unknownType(0x99)) { try NinePRequest.decode(unknown, limit: 1 << 20) }
        // Tauth/Rerror of legacy 9P2000 (type 106, Terror) is not 9P2000.L either.
        unknown[4] = 106
        #expect(throws: NinePCodecError.unknownType(106)) { try NinePRequest.decode(unknown, limit: 1 << 20) }

        let walk = NinePRequest.walk(fid: 0, newFid: 1, names: Array(repeating: "a", count: 17)).encode(tag: 1)
        #expect(throws: NinePCodecError.tooManyNames(17)) { try NinePRequest.decode(walk, limit: 1 << 20) }

        var invalid = NinePRequest.mkdir(directory: 1, name: "ab", mode: 0, gid: 0).encode(tag: 1)
        invalid[13] = 0xff
        #expect(throws: NinePCodecError.invalidString) { try NinePRequest.decode(invalid, limit: 1 << 20) }
        #expect(NinePCodecError.invalidString.errno == NineP.Errno.illegalSequence)
        #expect(NinePCodecError.unknownType(1).errno == NineP.Errno.notSupported)
    }
}
