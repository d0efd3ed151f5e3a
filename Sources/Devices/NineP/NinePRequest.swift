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

    /// The message a client sends; a Twrite's `count` data bytes are to be appended.
    public func encode(tag: UInt16) -> [UInt8] {
        switch self {
        case .version(let msize, let version):
            var writer = NinePWriter(type: MessageType.version, tag: tag)
            writer.integer(msize)
            writer.string(version)
            return writer.finish()
        case .auth(let authFid, let user, let tree, let numericUser):
            var writer = NinePWriter(type: MessageType.auth, tag: tag)
            writer.integer(authFid)
            writer.string(user)
            writer.string(tree)
            writer.integer(numericUser)
            return writer.finish()
        case .attach(let fid, let authFid, let user, let tree, let numericUser):
            var writer = NinePWriter(type: MessageType.attach, tag: tag)
            writer.integer(fid)
            writer.integer(authFid)
            writer.string(user)
            writer.string(tree)
            writer.integer(numericUser)
            return writer.finish()
        case .flush(let oldTag):
            var writer = NinePWriter(type: MessageType.flush, tag: tag)
            writer.integer(oldTag)
            return writer.finish()
        case .walk(let fid, let newFid, let names):
            var writer = NinePWriter(type: MessageType.walk, tag: tag)
            writer.integer(fid)
            writer.integer(newFid)
            writer.integer(UInt16(truncatingIfNeeded: names.count))
            names.forEach { writer.string($0) }
            return writer.finish()
        case .lopen(let fid, let flags):
            return Self.fixed(MessageType.lopen, tag, fid, flags)
        case .lcreate(let fid, let name, let flags, let mode, let gid):
            var writer = NinePWriter(type: MessageType.lcreate, tag: tag)
            writer.integer(fid)
            writer.string(name)
            writer.integer(flags)
            writer.integer(mode)
            writer.integer(gid)
            return writer.finish()
        case .read(let fid, let offset, let count):
            var writer = NinePWriter(type: MessageType.read, tag: tag)
            writer.integer(fid)
            writer.integer(offset)
            writer.integer(count)
            return writer.finish()
        case .write(let fid, let offset, let count):
            var writer = NinePWriter(type: MessageType.write, tag: tag)
            writer.integer(fid)
            writer.integer(offset)
            writer.integer(count)
            return writer.finish(trailing: Int(count))
        case .clunk(let fid):
            return Self.fixed(MessageType.clunk, tag, fid)
        case .remove(let fid):
            return Self.fixed(MessageType.remove, tag, fid)
        case .getattr(let fid, let mask):
            var writer = NinePWriter(type: MessageType.getattr, tag: tag)
            writer.integer(fid)
            writer.integer(mask)
            return writer.finish()
        case .setattr(let fid, let attributes):
            var writer = NinePWriter(type: MessageType.setattr, tag: tag)
            writer.integer(fid)
            writer.integer(attributes.valid)
            writer.integer(attributes.mode)
            writer.integer(attributes.uid)
            writer.integer(attributes.gid)
            writer.integer(attributes.size)
            writer.integer(attributes.accessTime.seconds)
            writer.integer(attributes.accessTime.nanoseconds)
            writer.integer(attributes.modificationTime.seconds)
            writer.integer(attributes.modificationTime.nanoseconds)
            return writer.finish()
        case .readdir(let fid, let offset, let count):
            var writer = NinePWriter(type: MessageType.readdir, tag: tag)
            writer.integer(fid)
            writer.integer(offset)
            writer.integer(count)
            return writer.finish()
        case .mkdir(let directory, let name, let mode, let gid):
            var writer = NinePWriter(type: MessageType.mkdir, tag: tag)
            writer.integer(directory)
            writer.string(name)
            writer.integer(mode)
            writer.integer(gid)
            return writer.finish()
        case .unlinkat(let directory, let name, let flags):
            var writer = NinePWriter(type: MessageType.unlinkat, tag: tag)
            writer.integer(directory)
            writer.string(name)
            writer.integer(flags)
            return writer.finish()
        case .renameat(let oldDirectory, let oldName, let newDirectory, let newName):
            var writer = NinePWriter(type: MessageType.renameat, tag: tag)
            writer.integer(oldDirectory)
            writer.string(oldName)
            writer.integer(newDirectory)
            writer.string(newName)
            return writer.finish()
        case .rename(let fid, let directory, let name):
            var writer = NinePWriter(type: MessageType.rename, tag: tag)
            writer.integer(fid)
            writer.integer(directory)
            writer.string(name)
            return writer.finish()
        case .symlink(let directory, let name, let target, let gid):
            var writer = NinePWriter(type: MessageType.symlink, tag: tag)
            writer.integer(directory)
            writer.string(name)
            writer.string(target)
            writer.integer(gid)
            return writer.finish()
        case .readlink(let fid):
            return Self.fixed(MessageType.readlink, tag, fid)
        case .link(let directory, let fid, let name):
            var writer = NinePWriter(type: MessageType.link, tag: tag)
            writer.integer(directory)
            writer.integer(fid)
            writer.string(name)
            return writer.finish()
        case .mknod(let directory, let name, let mode, let major, let minor, let gid):
            var writer = NinePWriter(type: MessageType.mknod, tag: tag)
            writer.integer(directory)
            writer.string(name)
            writer.integer(mode)
            writer.integer(major)
            writer.integer(minor)
            writer.integer(gid)
            return writer.finish()
        case .statfs(let fid):
            return Self.fixed(MessageType.statfs, tag, fid)
        case .fsync(let fid, let dataOnly):
            return Self.fixed(MessageType.fsync, tag, fid, dataOnly)
        case .lock(let fid, let lock, let flags):
            var writer = NinePWriter(type: MessageType.lock, tag: tag)
            writer.integer(fid)
            writer.integer(lock.type)
            writer.integer(flags)
            writer.integer(lock.start)
            writer.integer(lock.length)
            writer.integer(lock.processID)
            writer.string(lock.clientID)
            return writer.finish()
        case .getlock(let fid, let lock):
            var writer = NinePWriter(type: MessageType.getlock, tag: tag)
            writer.integer(fid)
            writer.lock(lock)
            return writer.finish()
        case .xattrwalk(let fid, let newFid, let name):
            var writer = NinePWriter(type: MessageType.xattrwalk, tag: tag)
            writer.integer(fid)
            writer.integer(newFid)
            writer.string(name)
            return writer.finish()
        case .xattrcreate(let fid, let name, let size, let flags):
            var writer = NinePWriter(type: MessageType.xattrcreate, tag: tag)
            writer.integer(fid)
            writer.string(name)
            writer.integer(size)
            writer.integer(flags)
            return writer.finish()
        }
    }

    private static func fixed(_ type: UInt8, _ tag: UInt16, _ values: UInt32...) -> [UInt8] {
        var writer = NinePWriter(type: type, tag: tag)
        values.forEach { writer.integer($0) }
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
    mutating func lock(_ lock: NineP.Lock) {
        integer(lock.type)
        integer(lock.start)
        integer(lock.length)
        integer(lock.processID)
        string(lock.clientID)
    }
}
