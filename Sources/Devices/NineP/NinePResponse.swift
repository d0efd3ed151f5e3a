/// A 9P2000.L response (R-message). An Rread's data follows its header and is not part
/// of the value: the server reads it straight into the guest's buffers.
public enum NinePResponse: Equatable, Sendable {
    case error(errno: UInt32)
    case version(msize: UInt32, version: String)
    case auth(NineP.Qid)
    case attach(NineP.Qid)
    case flush
    case walk([NineP.Qid])
    case lopen(NineP.Qid, ioUnit: UInt32)
    case lcreate(NineP.Qid, ioUnit: UInt32)
    case read(count: UInt32)
    case write(count: UInt32)
    case clunk
    case remove
    case getattr(NineP.Attributes)
    case setattr
    /// Entries as `DirectoryEntry.encode` lays them out.
    case readdir(data: [UInt8])
    case mkdir(NineP.Qid)
    case unlinkat
    case renameat
    case rename
    case symlink(NineP.Qid)
    case readlink(target: String)
    case link
    case mknod(NineP.Qid)
    case statfs(NineP.FileSystemStatistics)
    case fsync
    case lock(status: UInt8)
    case getlock(NineP.Lock)
    case xattrwalk(size: UInt64)
    case xattrcreate

    static let errorType: UInt8 = 7
    /// size[4] Rread[1] tag[2] count[4]: what precedes a read's data.
    public static let readHeaderSize = 11

    /// The message type: each response is its request's type plus one.
    var type: UInt8 {
        typealias T = NinePRequest.MessageType
        switch self {
        case .error: return Self.errorType
        case .version: return T.version + 1
        case .auth: return T.auth + 1
        case .attach: return T.attach + 1
        case .flush: return T.flush + 1
        case .walk: return T.walk + 1
        case .lopen: return T.lopen + 1
        case .lcreate: return T.lcreate + 1
        case .read: return T.read + 1
        case .write: return T.write + 1
        case .clunk: return T.clunk + 1
        case .remove: return T.remove + 1
        case .getattr: return T.getattr + 1
        case .setattr: return T.setattr + 1
        case .readdir: return T.readdir + 1
        case .mkdir: return T.mkdir + 1
        case .unlinkat: return T.unlinkat + 1
        case .renameat: return T.renameat + 1
        case .rename: return T.rename + 1
        case .symlink: return T.symlink + 1
        case .readlink: return T.readlink + 1
        case .link: return T.link + 1
        case .mknod: return T.mknod + 1
        case .statfs: return T.statfs + 1
        case .fsync: return T.fsync + 1
        case .lock: return T.lock + 1
        case .getlock: return T.getlock + 1
        case .xattrwalk: return T.xattrwalk + 1
        case .xattrcreate: return T.xattrcreate + 1
        }
    }

    /// The message the server sends; an Rread's `count` data bytes follow it.
    public func encode(tag: UInt16) -> [UInt8] {
        var writer = NinePWriter(type: type, tag: tag)
        switch self {
        case .error(let errno): writer.integer(errno)
        case .version(let msize, let version):
            writer.integer(msize)
            writer.string(version)
        case .auth(let qid), .attach(let qid), .mkdir(let qid), .symlink(let qid), .mknod(let qid): writer.qid(qid)
        case .walk(let qids):
            writer.integer(UInt16(truncatingIfNeeded: qids.count))
            qids.forEach { writer.qid($0) }
        case .lopen(let qid, let ioUnit), .lcreate(let qid, let ioUnit):
            writer.qid(qid)
            writer.integer(ioUnit)
        case .read(let count):
            writer.integer(count)
            return writer.finish(trailing: Int(count))
        case .write(let count): writer.integer(count)
        case .getattr(let attributes): writer.attributes(attributes)
        case .readdir(let data):
            writer.integer(UInt32(data.count))
            writer.data(data)
        case .readlink(let target): writer.string(target)
        case .statfs(let statistics):
            writer.integer(statistics.type)
            writer.integer(statistics.blockSize)
            writer.integer(statistics.blocks)
            writer.integer(statistics.freeBlocks)
            writer.integer(statistics.availableBlocks)
            writer.integer(statistics.files)
            writer.integer(statistics.freeFiles)
            writer.integer(statistics.fileSystemID)
            writer.integer(statistics.nameLength)
        case .lock(let status): writer.integer(status)
        case .getlock(let lock): writer.lock(lock)
        case .xattrwalk(let size): writer.integer(size)
        case .flush, .clunk, .remove, .setattr, .unlinkat, .renameat, .rename, .link, .fsync, .xattrcreate: break
        }
        return writer.finish()
    }

    /// Parses a response as a client would (tests and fuzzing drive the server as one).
    /// An Rread's data is not read: its count says how many bytes follow the header.
    public static func decode(_ bytes: [UInt8]) throws(NinePCodecError) -> (tag: UInt16, response: NinePResponse) {
        guard let (size, type, tag) = NinePRequest.header(of: bytes) else { throw .truncated }
        guard size >= NineP.headerSize, bytes.count >= size || type == NinePRequest.MessageType.read + 1 else { throw .truncated }
        var reader = NinePReader(Array(bytes.prefix(size)), position: NineP.headerSize)
        typealias T = NinePRequest.MessageType
        let response: NinePResponse
        switch type {
        case errorType: response = .error(errno: try reader.integer())
        case T.version + 1: response = .version(msize: try reader.integer(), version: try reader.string())
        case T.auth + 1: response = .auth(try reader.qid())
        case T.attach + 1: response = .attach(try reader.qid())
        case T.flush + 1: response = .flush
        case T.walk + 1:
            let count = Int(try reader.integer(UInt16.self))
            guard count <= NineP.maximumWalkNames else { throw .tooManyNames(count) }
            var qids: [NineP.Qid] = []
            for _ in 0..<count { qids.append(try reader.qid()) }
            response = .walk(qids)
        case T.lopen + 1: response = .lopen(try reader.qid(), ioUnit: try reader.integer())
        case T.lcreate + 1: response = .lcreate(try reader.qid(), ioUnit: try reader.integer())
        case T.read + 1: response = .read(count: try reader.integer())
        case T.write + 1: response = .write(count: try reader.integer())
        case T.clunk + 1: response = .clunk
        case T.remove + 1: response = .remove
        case T.getattr + 1: response = .getattr(try reader.attributes())
        case T.setattr + 1: response = .setattr
        case T.readdir + 1:
            let count = Int(try reader.integer(UInt32.self))
            response = .readdir(data: try reader.data(count))
        case T.mkdir + 1: response = .mkdir(try reader.qid())
        case T.unlinkat + 1: response = .unlinkat
        case T.renameat + 1: response = .renameat
        case T.rename + 1: response = .rename
        case T.symlink + 1: response = .symlink(try reader.qid())
        case T.readlink + 1: response = .readlink(target: try reader.string())
        case T.link + 1: response = .link
        case T.mknod + 1: response = .mknod(try reader.qid())
        case T.statfs + 1:
            response = .statfs(NineP.FileSystemStatistics(
                type: try reader.integer(), blockSize: try reader.integer(), blocks: try reader.integer(),
                freeBlocks: try reader.integer(), availableBlocks: try reader.integer(), files: try reader.integer(),
                freeFiles: try reader.integer(), fileSystemID: try reader.integer(), nameLength: try reader.integer()))
        case T.fsync + 1: response = .fsync
        case T.lock + 1: response = .lock(status: try reader.integer())
        case T.getlock + 1: response = .getlock(try reader.lock())
        case T.xattrwalk + 1: response = .xattrwalk(size: try reader.integer())
        case T.xattrcreate + 1: response = .xattrcreate
        default: throw .unknownType(type)
        }
        return (tag, response)
    }
}

extension NineP {
    /// One Rreaddir entry: qid[13] offset[8] type[1] name[s]. `offset` is where the next
    /// Treaddir continues.
    public struct DirectoryEntry: Equatable, Sendable {
        public var qid: Qid
        public var offset: UInt64
        public var type: UInt8
        public var name: String

        public init(qid: Qid, offset: UInt64, type: UInt8, name: String) {
            self.qid = qid
            self.offset = offset
            self.type = type
            self.name = name
        }

        public var encodedSize: Int { 13 + 8 + 1 + 2 + name.utf8.count }

        public func encode(into data: inout [UInt8]) {
            var writer = NinePWriter(type: 0, tag: 0)
            writer.qid(qid)
            writer.integer(offset)
            writer.integer(type)
            writer.string(name)
            data.append(contentsOf: writer.bytes[NineP.headerSize...])
        }

        /// The entries of an Rreaddir's data.
        public static func decode(_ data: [UInt8]) throws(NinePCodecError) -> [DirectoryEntry] {
            var reader = NinePReader(data)
            var entries: [DirectoryEntry] = []
            while reader.remaining > 0 {
                entries.append(DirectoryEntry(qid: try reader.qid(), offset: try reader.integer(), type: try reader.integer(),
                                              name: try reader.string()))
            }
            return entries
        }
    }
}

extension NinePReader {
    mutating func attributes() throws(NinePCodecError) -> NineP.Attributes {
        var attributes = NineP.Attributes()
        attributes.valid = try integer()
        attributes.qid = try qid()
        attributes.mode = try integer()
        attributes.uid = try integer()
        attributes.gid = try integer()
        attributes.linkCount = try integer()
        attributes.rdev = try integer()
        attributes.size = try integer()
        attributes.blockSize = try integer()
        attributes.blocks = try integer()
        attributes.accessTime = NineP.Time(seconds: try integer(), nanoseconds: try integer())
        attributes.modificationTime = NineP.Time(seconds: try integer(), nanoseconds: try integer())
        attributes.changeTime = NineP.Time(seconds: try integer(), nanoseconds: try integer())
        attributes.birthTime = NineP.Time(seconds: try integer(), nanoseconds: try integer())
        attributes.generation = try integer()
        attributes.dataVersion = try integer()
        return attributes
    }
}

extension NinePWriter {
    mutating func attributes(_ attributes: NineP.Attributes) {
        integer(attributes.valid)
        qid(attributes.qid)
        integer(attributes.mode)
        integer(attributes.uid)
        integer(attributes.gid)
        integer(attributes.linkCount)
        integer(attributes.rdev)
        integer(attributes.size)
        integer(attributes.blockSize)
        integer(attributes.blocks)
        for value in [attributes.accessTime, attributes.modificationTime, attributes.changeTime, attributes.birthTime] {
            time(value)
        }
        integer(attributes.generation)
        integer(attributes.dataVersion)
    }
}
