/// A 9P2000.L request (T-message). A Twrite's data follows its header in the message and
/// is not part of the value: the server writes it from the guest's buffers in place.
public enum NinePRequest: Equatable, Sendable {
    case version(msize: UInt32, version: String)
    case auth(authFid: UInt32, user: String, tree: String, numericUser: UInt32)
    case attach(fid: UInt32, authFid: UInt32, user: String, tree: String, numericUser: UInt32)
    case flush(oldTag: UInt16)
    case walk(fid: UInt32, newFid: UInt32, names: [String])
    case lopen(fid: UInt32, flags: UInt32)
    case lcreate(fid: UInt32, name: String, flags: UInt32, mode: UInt32, gid: UInt32)
    case read(fid: UInt32, offset: UInt64, count: UInt32)
    case write(fid: UInt32, offset: UInt64, count: UInt32)
    case clunk(fid: UInt32)
    case remove(fid: UInt32)
    case getattr(fid: UInt32, mask: UInt64)
    case setattr(fid: UInt32, NineP.SetAttributes)
    case readdir(fid: UInt32, offset: UInt64, count: UInt32)
    case mkdir(directory: UInt32, name: String, mode: UInt32, gid: UInt32)
    case unlinkat(directory: UInt32, name: String, flags: UInt32)
    case renameat(oldDirectory: UInt32, oldName: String, newDirectory: UInt32, newName: String)
    case rename(fid: UInt32, directory: UInt32, name: String)
    case symlink(directory: UInt32, name: String, target: String, gid: UInt32)
    case readlink(fid: UInt32)
    case link(directory: UInt32, fid: UInt32, name: String)
    case mknod(directory: UInt32, name: String, mode: UInt32, major: UInt32, minor: UInt32, gid: UInt32)
    case statfs(fid: UInt32)
    case fsync(fid: UInt32, dataOnly: UInt32)
    case lock(fid: UInt32, NineP.Lock, flags: UInt32)
    case getlock(fid: UInt32, NineP.Lock)
    case xattrwalk(fid: UInt32, newFid: UInt32, name: String)
    case xattrcreate(fid: UInt32, name: String, size: UInt64, flags: UInt32)

    /// size[4] Twrite[1] tag[2] fid[4] offset[8] count[4]: what precedes a write's data.
    public static let writeHeaderSize = 23

    public enum MessageType {
        public static let statfs: UInt8 = 8
        public static let lopen: UInt8 = 12
        public static let lcreate: UInt8 = 14
        public static let symlink: UInt8 = 16
        public static let mknod: UInt8 = 18
        public static let rename: UInt8 = 20
        public static let readlink: UInt8 = 22
        public static let getattr: UInt8 = 24
        public static let setattr: UInt8 = 26
        public static let xattrwalk: UInt8 = 30
        public static let xattrcreate: UInt8 = 32
        public static let readdir: UInt8 = 40
        public static let fsync: UInt8 = 50
        public static let lock: UInt8 = 52
        public static let getlock: UInt8 = 54
        public static let link: UInt8 = 70
        public static let mkdir: UInt8 = 72
        public static let renameat: UInt8 = 74
        public static let unlinkat: UInt8 = 76
        public static let version: UInt8 = 100
        public static let auth: UInt8 = 102
        public static let attach: UInt8 = 104
        public static let flush: UInt8 = 108
        public static let walk: UInt8 = 110
        public static let read: UInt8 = 116
        public static let write: UInt8 = 118
        public static let clunk: UInt8 = 120
        public static let remove: UInt8 = 122
    }

    /// The message type of a request that could not be parsed, and its tag, when the
    /// first seven bytes arrived: enough to answer it with an Rlerror.
    public static func header(of bytes: [UInt8]) -> (size: Int, type: UInt8, tag: UInt16)? {
        var reader = NinePReader(bytes)
        guard let size = try? reader.integer(UInt32.self), let type = try? reader.integer(UInt8.self),
              let tag = try? reader.integer(UInt16.self) else { return nil }
        return (Int(size), type, tag)
    }

    /// Parses one request. `bytes` holds the whole message, or for a Twrite its header:
    /// the size field must then account for exactly `count` bytes of data after it.
    /// Messages larger than `limit` (the negotiated msize) are refused.
    public static func decode(_ bytes: [UInt8], limit: Int) throws(NinePCodecError) -> (tag: UInt16, request: NinePRequest) {
        guard let (size, type, tag) = header(of: bytes) else { throw .truncated }
        guard size <= limit else { throw .oversized(size: size, limit: limit) }
        guard size >= NineP.headerSize else { throw .truncated }
        if type != MessageType.write {
            guard bytes.count >= size else { throw .truncated }
        }
        var reader = NinePReader(Array(bytes.prefix(size)), position: NineP.headerSize)
        let request: NinePRequest
        switch type {
        case MessageType.version:
            request = .version(msize: try reader.integer(), version: try reader.string())
        case MessageType.auth:
            request = .auth(authFid: try reader.integer(), user: try reader.string(), tree: try reader.string(),
                            numericUser: try reader.integer())
        case MessageType.attach:
            request = .attach(fid: try reader.integer(), authFid: try reader.integer(), user: try reader.string(),
                              tree: try reader.string(), numericUser: try reader.integer())
        case MessageType.flush:
            request = .flush(oldTag: try reader.integer())
        case MessageType.walk:
            let fid: UInt32 = try reader.integer()
            let newFid: UInt32 = try reader.integer()
            let count = Int(try reader.integer(UInt16.self))
            guard count <= NineP.maximumWalkNames else { throw .tooManyNames(count) }
            var names: [String] = []
            for _ in 0..<count { names.append(try reader.string()) }
            request = .walk(fid: fid, newFid: newFid, names: names)
        case MessageType.lopen:
            request = .lopen(fid: try reader.integer(), flags: try reader.integer())
        case MessageType.lcreate:
            request = .lcreate(fid: try reader.integer(), name: try reader.string(), flags: try reader.integer(),
                               mode: try reader.integer(), gid: try reader.integer())
        case MessageType.read:
            request = .read(fid: try reader.integer(), offset: try reader.integer(), count: try reader.integer())
        case MessageType.write:
            let fid: UInt32 = try reader.integer()
            let offset: UInt64 = try reader.integer()
            let count: UInt32 = try reader.integer()
            guard size == writeHeaderSize + Int(count) else { throw .truncated }
            request = .write(fid: fid, offset: offset, count: count)
        case MessageType.clunk:
            request = .clunk(fid: try reader.integer())
        case MessageType.remove:
            request = .remove(fid: try reader.integer())
        case MessageType.getattr:
            request = .getattr(fid: try reader.integer(), mask: try reader.integer())
        case MessageType.setattr:
            let fid: UInt32 = try reader.integer()
            request = .setattr(fid: fid, NineP.SetAttributes(
                valid: try reader.integer(), mode: try reader.integer(), uid: try reader.integer(), gid: try reader.integer(),
                size: try reader.integer(), accessTime: NineP.Time(seconds: try reader.integer(), nanoseconds: try reader.integer()),
                modificationTime: NineP.Time(seconds: try reader.integer(), nanoseconds: try reader.integer())))
        case MessageType.readdir:
            request = .readdir(fid: try reader.integer(), offset: try reader.integer(), count: try reader.integer())
        case MessageType.mkdir:
            request = .mkdir(directory: try reader.integer(), name: try reader.string(), mode: try reader.integer(),
                             gid: try reader.integer())
        case MessageType.unlinkat:
            request = .unlinkat(directory: try reader.integer(), name: try reader.string(), flags: try reader.integer())
        case MessageType.renameat:
            request = .renameat(oldDirectory: try reader.integer(), oldName: try reader.string(),
                                newDirectory: try reader.integer(), newName: try reader.string())
        case MessageType.rename:
            request = .rename(fid: try reader.integer(), directory: try reader.integer(), name: try reader.string())
        case MessageType.symlink:
            request = .symlink(directory: try reader.integer(), name: try reader.string(), target: try reader.string(),
                               gid: try reader.integer())
        case MessageType.readlink:
            request = .readlink(fid: try reader.integer())
        case MessageType.link:
            request = .link(directory: try reader.integer(), fid: try reader.integer(), name: try reader.string())
        case MessageType.mknod:
            request = .mknod(directory: try reader.integer(), name: try reader.string(), mode: try reader.integer(),
                             major: try reader.integer(), minor: try reader.integer(), gid: try reader.integer())
        case MessageType.statfs:
            request = .statfs(fid: try reader.integer())
        case MessageType.fsync:
            request = .fsync(fid: try reader.integer(), dataOnly: try reader.integer())
        case MessageType.lock:
            let fid: UInt32 = try reader.integer()
            let type: UInt8 = try reader.integer()
            let flags: UInt32 = try reader.integer()
            request = .lock(fid: fid, NineP.Lock(type: type, start: try reader.integer(), length: try reader.integer(),
                                                 processID: try reader.integer(), clientID: try reader.string()), flags: flags)
        case MessageType.getlock:
            request = .getlock(fid: try reader.integer(), try reader.lock())
        case MessageType.xattrwalk:
            request = .xattrwalk(fid: try reader.integer(), newFid: try reader.integer(), name: try reader.string())
        case MessageType.xattrcreate:
            request = .xattrcreate(fid: try reader.integer(), name: try reader.string(), size: try reader.integer(),
                                   flags: try reader.integer())
        default:
            throw .unknownType(type)
        }
        return (tag, request)
    }

    /// The message type on the wire.
    var type: UInt8 {
        typealias T = MessageType
        switch self {
        case .version: return T.version
        case .auth: return T.auth
        case .attach: return T.attach
        case .flush: return T.flush
        case .walk: return T.walk
        case .lopen: return T.lopen
        case .lcreate: return T.lcreate
        case .read: return T.read
        case .write: return T.write
        case .clunk: return T.clunk
        case .remove: return T.remove
        case .getattr: return T.getattr
        case .setattr: return T.setattr
        case .readdir: return T.readdir
        case .mkdir: return T.mkdir
        case .unlinkat: return T.unlinkat
        case .renameat: return T.renameat
        case .rename: return T.rename
        case .symlink: return T.symlink
        case .readlink: return T.readlink
        case .link: return T.link
        case .mknod: return T.mknod
        case .statfs: return T.statfs
        case .fsync: return T.fsync
        case .lock: return T.lock
        case .getlock: return T.getlock
        case .xattrwalk: return T.xattrwalk
        case .xattrcreate: return T.xattrcreate
        }
    }

    /// The message a client sends; a Twrite's `count` data bytes are to be appended.
    public func encode(tag: UInt16) -> [UInt8] {
        var writer = NinePWriter(type: type, tag: tag)
        switch self {
        case .version(let msize, let version):
            writer.integer(msize)
            writer.string(version)
        case .auth(let authFid, let user, let tree, let numericUser):
            writer.integers(authFid)
            writer.strings(user, tree)
            writer.integer(numericUser)
        case .attach(let fid, let authFid, let user, let tree, let numericUser):
            writer.integers(fid, authFid)
            writer.strings(user, tree)
            writer.integer(numericUser)
        case .flush(let oldTag):
            writer.integer(oldTag)
        case .walk(let fid, let newFid, let names):
            writer.integers(fid, newFid)
            writer.integer(UInt16(truncatingIfNeeded: names.count))
            names.forEach { writer.string($0) }
        case .lopen(let fid, let flags):
            writer.integers(fid, flags)
        case .lcreate(let fid, let name, let flags, let mode, let gid):
            writer.integer(fid)
            writer.string(name)
            writer.integers(flags, mode, gid)
        case .read(let fid, let offset, let count), .readdir(let fid, let offset, let count):
            writer.integer(fid)
            writer.integer(offset)
            writer.integer(count)
        case .write(let fid, let offset, let count):
            writer.integer(fid)
            writer.integer(offset)
            writer.integer(count)
            return writer.finish(trailing: Int(count))
        case .clunk(let fid), .remove(let fid), .readlink(let fid), .statfs(let fid):
            writer.integer(fid)
        case .getattr(let fid, let mask):
            writer.integer(fid)
            writer.integer(mask)
        case .setattr(let fid, let attributes):
            writer.integers(fid, attributes.valid, attributes.mode, attributes.uid, attributes.gid)
            writer.integer(attributes.size)
            writer.time(attributes.accessTime)
            writer.time(attributes.modificationTime)
        case .mkdir(let directory, let name, let mode, let gid):
            writer.integer(directory)
            writer.string(name)
            writer.integers(mode, gid)
        case .unlinkat(let directory, let name, let flags):
            writer.integer(directory)
            writer.string(name)
            writer.integer(flags)
        case .renameat(let oldDirectory, let oldName, let newDirectory, let newName):
            writer.integer(oldDirectory)
            writer.string(oldName)
            writer.integer(newDirectory)
            writer.string(newName)
        case .rename(let fid, let directory, let name):
            writer.integers(fid, directory)
            writer.string(name)
        case .symlink(let directory, let name, let target, let gid):
            writer.integer(directory)
            writer.strings(name, target)
            writer.integer(gid)
        case .link(let directory, let fid, let name):
            writer.integers(directory, fid)
            writer.string(name)
        case .mknod(let directory, let name, let mode, let major, let minor, let gid):
            writer.integer(directory)
            writer.string(name)
            writer.integers(mode, major, minor, gid)
        case .fsync(let fid, let dataOnly):
            writer.integers(fid, dataOnly)
        case .lock(let fid, let lock, let flags):
            writer.integer(fid)
            writer.integer(lock.type)
            writer.integer(flags)
            writer.integer(lock.start)
            writer.integer(lock.length)
            writer.integer(lock.processID)
            writer.string(lock.clientID)
        case .getlock(let fid, let lock):
            writer.integer(fid)
            writer.lock(lock)
        case .xattrwalk(let fid, let newFid, let name):
            writer.integers(fid, newFid)
            writer.string(name)
        case .xattrcreate(let fid, let name, let size, let flags):
            writer.integer(fid)
            writer.string(name)
            writer.integer(size)
            writer.integer(flags)
        }
        return writer.finish()
    }
}

extension NinePReader {
    /// type[1] start[8] length[8] proc_id[4] client_id[s], as Tgetlock and Rgetlock carry it.
    mutating func lock() throws(NinePCodecError) -> NineP.Lock {
        NineP.Lock(type: try integer(), start: try integer(), length: try integer(), processID: try integer(),
                   clientID: try string())
    }
}

extension NinePWriter {
    mutating func integers(_ values: UInt32...) {
        values.forEach { integer($0) }
    }

    mutating func strings(_ values: String...) {
        values.forEach { string($0) }
    }

    mutating func time(_ time: NineP.Time) {
        integer(time.seconds)
        integer(time.nanoseconds)
    }

    mutating func lock(_ lock: NineP.Lock) {
        integer(lock.type)
        integer(lock.start)
        integer(lock.length)
        integer(lock.processID)
        string(lock.clientID)
    }
}
