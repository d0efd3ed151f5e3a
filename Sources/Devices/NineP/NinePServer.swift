import CLinux
import Glibc

/// Serves one client's 9P2000.L requests on a `SharedDirectory`, or on several: exports
/// that a Tattach chooses by its aname. Fids name paths beneath the directory they were
/// attached to (lists of single names), opened again for each operation, so that the
/// kernel confines every access and `..` is only ever resolved here, never on the host.
/// What a client can make the host hold is bounded, over all exports together:
/// `maximumFids` fids, of which at most `maximumOpenFiles` have a file open, and messages
/// of at most `maximumMessageSize`. Not thread-safe: its device serialises requests.
public final class NinePServer {
    /// The largest msize negotiated.
    public static let maximumMessageSize = 512 << 10
    /// Smallest msize accepted: room for any fixed-size answer and a useful read.
    public static let minimumMessageSize = 4096
    public static let maximumFids = 8192
    public static let maximumOpenFiles = 1024

    struct Fid {
        var path: SharePath
        let export: NinePExport
        /// An open file or directory (Tlopen, Tlcreate), or -1.
        var file: Int32 = -1
        var writable = false
        /// The flags the file was opened with, so that a restored VM can open it again.
        var openFlags: Int32 = 0
        /// Made by Txattrwalk: its value is empty.
        var isAttributeList = false

        var directory: SharedDirectory { export.directory }
    }

    /// What a Tattach reaches: one directory whatever its aname, or the export its aname names.
    private enum Exports {
        case one(SharedDirectory)
        case named([String: SharedDirectory])
    }

    private var exports: Exports
    /// On a share of exports, what an attach with an empty aname reaches: a read-only
    /// directory whose entries are the exports, each leading into its directory, so that a
    /// client that can mount a device only once (Linux) reaches every export through one
    /// mount. Backed by an empty directory, which answers everything but walks and reads.
    private let top: SharedDirectory?
    /// The negotiated msize: no request or answer is larger.
    public private(set) var messageSize = minimumMessageSize
    private var fids: [UInt32: Fid] = [:]
    private var openFiles = 0
    /// The numeric user the client attached as: the owner of what it creates, when
    /// microvm runs as root and so can give files away.
    private var user: UInt32 = 0
    private let setsOwners = geteuid() == 0

    /// Serves `directory` to every attach, whatever its aname.
    public init(directory: SharedDirectory) {
        exports = .one(directory)
        top = nil
    }

    /// Serves the export each attach's aname names (`bind(exports:)`) and, given `top` (an
    /// empty directory, served read-only), all of them under an attach with an empty aname.
    public init(exports: [String: SharedDirectory], top: SharedDirectory? = nil) throws(NinePExportError) {
        try Self.check(exports)
        self.exports = .named(exports)
        self.top = top
    }

    /// Replaces the exports later attaches choose from. A fid stays on the directory it was
    /// attached to, bound or not.
    public func bind(exports: [String: SharedDirectory]) throws(NinePExportError) {
        guard case .named = self.exports else { throw .oneDirectory }
        try Self.check(exports)
        self.exports = .named(exports)
    }

    private static func check(_ exports: [String: SharedDirectory]) throws(NinePExportError) {
        if let bad = exports.keys.sorted().first(where: { !NinePExport.isName($0) }) { throw .badName(bad) }
    }

    deinit { closeAll() }

    public var fidCount: Int { fids.count }
    public var openFileCount: Int { openFiles }

    /// Answers one request. A Twrite's data is `data` (at most its count is written); a
    /// Tread's data goes straight into `buffers`, which follow the Rread header.
    public func handle(_ request: NinePRequest, data: [UnsafeRawBufferPointer] = [],
                       into buffers: [UnsafeMutableRawBufferPointer] = []) -> NinePResponse {
        do {
            return try serve(request, data: data, into: buffers)
        } catch {
            return .error(errno: error.errno)
        }
    }

    private func serve(_ request: NinePRequest, data: [UnsafeRawBufferPointer],
                       into buffers: [UnsafeMutableRawBufferPointer]) throws(NinePError) -> NinePResponse {
        switch request {
        case .version(let msize, let version):
            closeAll()
            guard msize >= Self.minimumMessageSize else { throw .invalid }
            messageSize = min(Int(msize), Self.maximumMessageSize)
            return .version(msize: UInt32(messageSize), version: version == NineP.version ? NineP.version : "unknown")
        case .auth:
            throw .notSupported
        case .attach(let fid, _, _, let name, let numericUser):
            try checkUnused(fid)
            let export = try self.export(named: name)
            let qid = Self.qid(try export.directory.status(.root).get())
            user = numericUser
            fids[fid] = Fid(path: .root, export: export)
            return .attach(qid)
        case .flush:
            // Requests are answered in order, each before the next is read: the one to
            // flush has been answered already.
            return .flush
        case .walk(let fid, let newFid, let names):
            return try walk(fid, newFid, names)
        case .lopen(let fid, let flags):
            return try openFile(fid, flags: flags)
        case .lcreate(let fid, let name, let flags, let mode, let gid):
            return try create(fid, name, flags: flags, mode: mode, gid: gid)
        case .read(let fid, let offset, let count):
            let file = try self.fid(fid)
            if file.isAttributeList { return .read(count: 0) }
            guard file.file >= 0 else { throw .badFid }
            let limit = min(Int(count), messageSize - NinePResponse.readHeaderSize)
            let read = Self.vectored(buffers.map { UnsafeRawBufferPointer($0) }, limit: limit) { vectors, count in
                preadv(file.file, vectors, count, off_t(truncatingIfNeeded: offset))
            }
            guard read >= 0 else { throw .last }
            return .read(count: UInt32(read))
        case .write(let fid, let offset, let count):
            let file = try self.fid(fid)
            guard file.file >= 0, file.writable else { throw file.directory.isReadOnly ? .readOnly : .badFid }
            let written = Self.vectored(data, limit: Int(count)) { vectors, count in
                pwritev(file.file, vectors, count, off_t(truncatingIfNeeded: offset))
            }
            guard written >= 0 else { throw .last }
            return .write(count: UInt32(written))
        case .clunk(let fid):
            try release(fid)
            return .clunk
        case .remove(let fid):
            let file = try self.fid(fid)
            let (path, directory) = (file.path, file.directory)
            try release(fid)
            try directory.modifying()
            try directory.changingEntry(path)
            let isDirectory = try directory.status(path).get().st_mode & S_IFMT == S_IFDIR
            try directory.withParent(path) { parent, name in
                Self.check(unlinkat(parent, name, isDirectory ? AT_REMOVEDIR : 0))
            }.get()
            return .remove
        case .getattr(let fid, _):
            let file = try self.fid(fid)
            let directory = file.directory
            var attributes = Self.attributes(try directory.status(file.path).get())
            attributes.uid = directory.userIDs.guestID(forHost: attributes.uid)
            attributes.gid = directory.groupIDs.guestID(forHost: attributes.gid)
            return .getattr(attributes)
        case .setattr(let fid, let attributes):
            try setAttributes(try self.fid(fid), attributes)
            return .setattr
        case .readdir(let fid, let offset, let count):
            let file = try self.fid(fid)
            guard file.file >= 0 else { throw .badFid }
            if atTop(file.export, file.path) {
                return .readdir(data: topEntries(offset: offset, count: min(Int(count), messageSize - NinePResponse.readHeaderSize)))
            }
            return .readdir(data: try readDirectory(file.file, offset: offset,
                                                    count: min(Int(count), messageSize - NinePResponse.readHeaderSize),
                                                    only: file.path.isRoot ? file.directory.visibleEntries : nil))
        case .mkdir(let directoryFid, let name, let mode, let gid):
            let (path, directory) = try newEntry(directoryFid, name)
            let owner = try newOwner(gid: gid, in: directory)
            try directory.inParent(path) { Self.check(mkdirat($0, $1, directory.permitted(mode, directory: true))) }
            try giveAway(path, to: owner, in: directory)
            return .mkdir(Self.qid(try directory.status(path).get()))
        case .unlinkat(let directoryFid, let name, let flags):
            let (path, directory) = try newEntry(directoryFid, name)
            try directory.inParent(path) { Self.check(unlinkat($0, $1, Int32(bitPattern: flags) & AT_REMOVEDIR)) }
            return .unlinkat
        case .renameat(let oldDirectory, let oldName, let newDirectory, let newName):
            let old = try newEntry(oldDirectory, oldName)
            try rename(from: old.path, to: try newEntry(newDirectory, newName, besides: old.directory).path, in: old.directory)
            return .renameat
        case .rename(let fid, let directoryFid, let name):
            let file = try self.fid(fid)
            guard !file.path.isRoot else { throw NinePError(EBUSY) }
            try file.directory.changingEntry(file.path)
            try rename(from: file.path, to: try newEntry(directoryFid, name, besides: file.directory).path, in: file.directory)
            return .rename
        case .symlink(let directoryFid, let name, let target, let gid):
            let (path, directory) = try newEntry(directoryFid, name)
            let owner = try newOwner(gid: gid, in: directory)
            try directory.inParent(path) { Self.check(symlinkat(target, $0, $1)) }
            try giveAway(path, to: owner, in: directory)
            return .symlink(Self.qid(try directory.status(path).get()))
        case .readlink(let fid):
            let file = try self.fid(fid)
            let target = try file.directory.withDescriptor(file.path, flags: CLINUX_O_PATH) { fd -> Result<String, NinePError> in
                var buffer = [UInt8](repeating: 0, count: SharedDirectory.maximumPathLength)
                let count = readlinkat(fd, "", &buffer, buffer.count)
                guard count >= 0 else { return .failure(.last) }
                guard let target = String(validating: buffer[..<count], as: UTF8.self) else {
                    return .failure(NinePError(errno: NineP.Errno.illegalSequence))
                }
                return .success(target)
            }.get()
            return .readlink(target: target)
        case .link(let directoryFid, let fid, let name):
            let file = try self.fid(fid)
            let (source, directory) = (file.path, file.directory)
            let path = try newEntry(directoryFid, name, besides: directory).path
            guard !source.isRoot else { throw NinePError(EPERM) }
            try directory.withParent(source) { sourceDirectory, sourceName in
                directory.withParent(path) { Self.check(linkat(sourceDirectory, sourceName, $0, $1, 0)) }
            }.get()
            return .link
        case .mknod(let directoryFid, let name, let mode, _, _, let gid):
            let (path, directory) = try newEntry(directoryFid, name)
            // Device nodes would let the guest open the host's devices through the share.
            let kind = mode_t(mode) & S_IFMT
            guard kind == S_IFIFO || kind == S_IFSOCK || kind == S_IFREG else { throw NinePError(EPERM) }
            let owner = try newOwner(gid: gid, in: directory)
            try directory.inParent(path) { Self.check(mknodat($0, $1, kind | directory.permitted(mode, directory: false), 0)) }
            try giveAway(path, to: owner, in: directory)
            return .mknod(Self.qid(try directory.status(path).get()))
        case .statfs(let fid):
            let statistics = try self.fid(fid).directory.statistics().get()
            let id = unsafeBitCast(statistics.f_fsid, to: (UInt32, UInt32).self)
            return .statfs(NineP.FileSystemStatistics(
                type: UInt32(truncatingIfNeeded: statistics.f_type), blockSize: UInt32(truncatingIfNeeded: statistics.f_bsize),
                blocks: UInt64(statistics.f_blocks), freeBlocks: UInt64(statistics.f_bfree),
                availableBlocks: UInt64(statistics.f_bavail), files: UInt64(statistics.f_files),
                freeFiles: UInt64(statistics.f_ffree), fileSystemID: UInt64(id.0) | UInt64(id.1) << 32,
                nameLength: UInt32(truncatingIfNeeded: statistics.f_namelen)))
        case .fsync(let fid, let dataOnly):
            let file = try self.fid(fid)
            guard file.file >= 0 else { throw .badFid }
            try Self.check(dataOnly != 0 ? fdatasync(file.file) : fsync(file.file)).get()
            return .fsync
        case .lock(let fid, let lock, _):
            let file = try self.fid(fid)
            guard file.file >= 0 else { throw .badFid }
            // Never waits: a conflicting lock answers BLOCKED and the client tries again.
            var description = Self.flock(lock)
            guard fcntl(file.file, CLINUX_F_OFD_SETLK, &description) == 0 else {
                return .lock(status: errno == EAGAIN || errno == EACCES ? NineP.LockStatus.blocked : NineP.LockStatus.error)
            }
            return .lock(status: NineP.LockStatus.success)
        case .getlock(let fid, let lock):
            let file = try self.fid(fid)
            guard file.file >= 0 else { throw .badFid }
            var description = Self.flock(lock)
            guard fcntl(file.file, CLINUX_F_OFD_GETLK, &description) == 0 else { throw .last }
            let type: UInt8 = switch Int32(description.l_type) {
            case F_RDLCK: NineP.Lock.readLock
            case F_WRLCK: NineP.Lock.writeLock
            default: NineP.Lock.unlock
            }
            // The host's lock carries signed numbers (a length of -1 reaches back to the
            // start); the wire carries them as they are.
            return .getlock(NineP.Lock(type: type, start: UInt64(bitPattern: Int64(description.l_start)),
                                       length: UInt64(bitPattern: Int64(description.l_len)),
                                       processID: lock.processID, clientID: lock.clientID))
        case .xattrwalk(let fid, let newFid, let name):
            // Extended attributes are not shared: the list is empty and no name exists.
            let file = try self.fid(fid)
            guard name.isEmpty else { throw NinePError(errno: NineP.Errno.noData) }
            if newFid != fid { try checkUnused(newFid) }
            try release(newFid, ifPresent: true)
            fids[newFid] = Fid(path: file.path, export: file.export, isAttributeList: true)
            return .xattrwalk(size: 0)
        case .xattrcreate(let fid, _, _, _):
            try self.fid(fid).directory.modifying()
            throw .notSupported
        }
    }

    // MARK: Fids

    private func fid(_ fid: UInt32) throws(NinePError) -> Fid {
        guard let found = fids[fid] else { throw .badFid }
        return found
    }

    /// The export an attach's aname chooses: on a share of one directory, that directory whatever the aname.
    private func export(named name: String) throws(NinePError) -> NinePExport {
        switch exports {
        case .one(let directory):
            return NinePExport(name: "", directory: directory)
        case .named(let table):
            if name.isEmpty, let top { return NinePExport(name: "", directory: top) }
            guard let directory = table[name] else { throw NinePError(ENOENT) }
            return NinePExport(name: name, directory: directory)
        }
    }

    /// Whether `fid` stands at the top of a share of exports, where names are exports.
    private func atTop(_ export: NinePExport, _ path: SharePath) -> Bool {
        top != nil && hasExports && export.name.isEmpty && path.isRoot
    }

    private func checkUnused(_ fid: UInt32) throws(NinePError) {
        guard fids[fid] == nil, fid != NineP.noFid else { throw .badFid }
        guard fids.count < Self.maximumFids else { throw NinePError(errno: NineP.Errno.tooManyFiles) }
    }

    private func release(_ fid: UInt32, ifPresent: Bool = false) throws(NinePError) {
        guard let removed = fids.removeValue(forKey: fid) else {
            if ifPresent { return }
            throw .badFid
        }
        if removed.file >= 0 {
            close(removed.file)
            openFiles -= 1
        }
    }

    private func closeAll() {
        for fid in fids.values where fid.file >= 0 { close(fid.file) }
        fids = [:]
        openFiles = 0
    }

    private func walk(_ fid: UInt32, _ newFid: UInt32, _ names: [String]) throws(NinePError) -> NinePResponse {
        let source = try self.fid(fid)
        if newFid != fid { try checkUnused(newFid) } else if source.file >= 0 { throw .badFid }
        var path = source.path
        var export = source.export
        var qids: [NineP.Qid] = []
        for name in names {
            if atTop(export, path), name != ".", name != "..", case .named(let table) = exports {
                guard let directory = table[name], case .success(let status) = directory.status(.root) else {
                    if qids.isEmpty { throw NinePError(ENOENT) }
                    return .walk(qids)
                }
                export = NinePExport(name: name, directory: directory)
                qids.append(Self.qid(status))
                continue
            }
            if name == ".." {
                // The share's root is its own parent.
                path = path.parent
            } else if name != "." {
                guard SharedDirectory.isName(name) else { throw NinePError(ENOENT) }
                path = path.appending(name)
                guard path.length <= SharedDirectory.maximumPathLength else { throw NinePError(errno: NineP.Errno.nameTooLong) }
            }
            switch export.directory.status(path) {
            case .success(let status): qids.append(Self.qid(status))
            case .failure(let error):
                if qids.isEmpty { throw error }
                return .walk(qids)
            }
        }
        fids[newFid] = Fid(path: path, export: export)
        return .walk(qids)
    }

    // MARK: Files

    /// Every flag `openFlags` may give, and so every flag a saved fid may hold.
    private static var allowedOpenFlags: Int32 {
        O_TRUNC | O_APPEND | O_DSYNC | O_SYNC | O_DIRECTORY | O_CREAT | O_EXCL | O_ACCMODE | O_NONBLOCK
    }

    /// Open flags a client may ask for (Linux's values, which 9P2000.L carries as they are).
    /// O_NONBLOCK is always added, so that a FIFO put in the share by the host never
    /// blocks the thread that serves the guest.
    private static func openFlags(_ flags: UInt32) -> Int32 {
        var result = Int32(bitPattern: flags) & allowedOpenFlags & ~O_NONBLOCK
        if result & O_ACCMODE == O_ACCMODE { result &= ~O_ACCMODE }
        return result | O_NONBLOCK
    }

    private func openFile(_ fid: UInt32, flags: UInt32) throws(NinePError) -> NinePResponse {
        var file = try self.fid(fid)
        guard file.file < 0, !file.isAttributeList else { throw .badFid }
        let flags = Self.openFlags(flags) & ~(O_CREAT | O_EXCL)
        let writable = flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0
        if writable { try file.directory.modifying() }
        guard openFiles < Self.maximumOpenFiles else { throw NinePError(errno: NineP.Errno.tooManyFiles) }
        // Only a regular file or a directory, looked at before and after the open.
        let fd = try file.directory.open(file.path, flags: flags).get()
        var status = stat()
        fstat(fd, &status)
        file.file = fd
        file.writable = writable
        file.openFlags = flags
        fids[fid] = file
        openFiles += 1
        return .lopen(Self.qid(status), ioUnit: 0)
    }

    private func create(_ fid: UInt32, _ name: String, flags: UInt32, mode: UInt32, gid: UInt32) throws(NinePError) -> NinePResponse {
        var file = try self.fid(fid)
        guard file.file < 0, !file.isAttributeList else { throw .badFid }
        let (path, directory) = try newEntry(fid, name)
        guard openFiles < Self.maximumOpenFiles else { throw NinePError(errno: NineP.Errno.tooManyFiles) }
        let created = Self.openFlags(flags)
        let owner = try newOwner(gid: gid, in: directory)
        // Made here with O_EXCL, so that only a file this request made is given to the
        // guest's user; an existing one is opened as Tlopen would (unless the client
        // asked for O_EXCL itself), never given away, and only if it is a regular file.
        let fd: Int32
        switch directory.open(path, flags: created | O_CREAT | O_EXCL, mode: UInt32(directory.permitted(mode, directory: false))) {
        case .success(let made):
            fd = made
            try? giveAway(path, to: owner, in: directory)
            // A change of owner takes set-id bits off; a share that keeps them gives them back.
            let bits = directory.permitted(mode, directory: false)
            if owner != nil, bits & (S_ISUID | S_ISGID) != 0 { try? directory.inParent(path) { Self.changeMode($0, $1, bits) } }
        case .failure(let error) where error.errno == UInt32(EEXIST) && created & O_EXCL == 0:
            fd = try directory.open(path, flags: created & ~O_CREAT).get()
        case .failure(let error):
            throw error
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw NinePError(EPERM)
        }
        file.path = path
        file.file = fd
        file.writable = true
        file.openFlags = created
        fids[fid] = file
        openFiles += 1
        return .lcreate(Self.qid(status), ioUnit: 0)
    }

    /// The path of `name` in the directory `fid` names, for a request that changes the
    /// share, and the directory it lies beneath; EXDEV if that is not `other`, where the
    /// request pairs it with another entry (a rename or a link stays in one export).
    private func newEntry(_ fid: UInt32, _ name: String,
                          besides other: SharedDirectory? = nil) throws(NinePError) -> (path: SharePath, directory: SharedDirectory) {
        let parent = try self.fid(fid)
        let directory = parent.directory
        if let other, other !== directory { throw NinePError(EXDEV) }
        try directory.modifying()
        guard SharedDirectory.isName(name) else { throw .invalid }
        let path = parent.path.appending(name)
        try directory.changingEntry(path)
        guard path.length <= SharedDirectory.maximumPathLength else { throw NinePError(errno: NineP.Errno.nameTooLong) }
        return (path, directory)
    }

    /// The host owner of what the guest makes next in `directory`: as root, the user it
    /// attached as and `gid`, through the directory's id mappings (an id they do not map
    /// cannot own a file: EOVERFLOW, as in a user namespace); nil otherwise, so that it
    /// belongs to the user who runs microvm.
    private func newOwner(gid: UInt32, in directory: SharedDirectory) throws(NinePError) -> (uid: UInt32, gid: UInt32)? {
        guard setsOwners else { return nil }
        guard let uid = directory.userIDs.hostID(forGuest: user),
              let gid = directory.groupIDs.hostID(forGuest: gid) else { throw NinePError(EOVERFLOW) }
        return (uid, gid)
    }

    private func giveAway(_ path: SharePath, to owner: (uid: UInt32, gid: UInt32)?, in directory: SharedDirectory) throws(NinePError) {
        guard let owner else { return }
        try directory.inParent(path) { Self.check(fchownat($0, $1, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW)) }
    }

    private func rename(from old: SharePath, to new: SharePath, in directory: SharedDirectory) throws(NinePError) {
        try directory.withParent(old) { oldDirectory, oldName in
            directory.withParent(new) { Self.check(renameat(oldDirectory, oldName, $0, $1)) }
        }.get()
        // Fids below the moved entry follow it, as the client expects of its dentries; those
        // of other directories name other files.
        for (key, fid) in fids where fid.directory === directory && fid.path.isWithin(old) {
            fids[key]?.path = fid.path.moved(from: old, to: new)
        }
    }

    private func setAttributes(_ file: Fid, _ attributes: NineP.SetAttributes) throws(NinePError) {
        let directory = file.directory
        try directory.modifying()
        let valid = attributes.valid
        typealias S = NineP.SetAttributes
        if valid & S.mode != 0 {
            let isDirectory = try directory.status(file.path).get().st_mode & S_IFMT == S_IFDIR
            let mode = directory.permitted(attributes.mode, directory: isDirectory)
            try directory.inParent(file.path) { Self.changeMode($0, $1, mode) }
        }
        if valid & (S.uid | S.gid) != 0, setsOwners {
            func host(_ bit: UInt32, _ id: UInt32, _ mappings: [IDMapping]) throws(NinePError) -> UInt32 {
                guard valid & bit != 0 else { return UInt32.max }
                guard let mapped = mappings.hostID(forGuest: id) else { throw .invalid }
                return mapped
            }
            let uid = try host(S.uid, attributes.uid, directory.userIDs)
            let gid = try host(S.gid, attributes.gid, directory.groupIDs)
            try directory.inParent(file.path) { Self.check(fchownat($0, $1, uid, gid, AT_SYMLINK_NOFOLLOW)) }
        }
        if valid & S.size != 0 {
            guard let size = off_t(exactly: attributes.size) else { throw NinePError(EFBIG) }
            if file.file >= 0, file.writable {
                try Self.check(ftruncate(file.file, size)).get()
            } else {
                try directory.withDescriptor(file.path, flags: O_WRONLY | O_NONBLOCK) { Self.check(ftruncate($0, size)) }.get()
            }
        }
        if valid & (S.accessTime | S.modificationTime) != 0 {
            func time(_ bit: UInt32, _ setBit: UInt32, _ value: NineP.Time) -> timespec {
                guard valid & bit != 0 else { return timespec(tv_sec: 0, tv_nsec: CLINUX_UTIME_OMIT) }
                guard valid & setBit != 0 else { return timespec(tv_sec: 0, tv_nsec: CLINUX_UTIME_NOW) }
                return timespec(tv_sec: Int(truncatingIfNeeded: value.seconds), tv_nsec: Int(truncatingIfNeeded: value.nanoseconds))
            }
            let times = [time(S.accessTime, S.accessTimeSet, attributes.accessTime),
                         time(S.modificationTime, S.modificationTimeSet, attributes.modificationTime)]
            try directory.inParent(file.path) { Self.check(utimensat($0, $1, times, AT_SYMLINK_NOFOLLOW)) }
        }
    }

    /// Entries from `offset` (0, or an offset an earlier entry carried) that fit in `count`
    /// bytes. Names that are not UTF-8 are left out.
    private func readDirectory(_ fd: Int32, offset: UInt64, count: Int, only visible: Set<String>?) throws(NinePError) -> [UInt8] {
        guard lseek(fd, off_t(truncatingIfNeeded: offset), SEEK_SET) >= 0 else { throw .last }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: max(count, 512))
        while data.isEmpty {
            let read = buffer.withUnsafeMutableBytes { clinux_getdents64(fd, $0.baseAddress, UInt($0.count)) }
            guard read >= 0 else { throw NinePError(Int32(-read)) }
            guard read > 0 else { break }
            var position = 0
            while position + 19 < read {
                let inode = buffer.littleEndian(UInt64.self, at: position)!
                let next = buffer.littleEndian(UInt64.self, at: position + 8)!
                let length = Int(buffer.littleEndian(UInt16.self, at: position + 16)!)
                let type = buffer[position + 18]
                let nameBytes = buffer[(position + 19)..<(position + length)].prefix { $0 != 0 }
                position += length
                guard let name = String(validating: nameBytes, as: UTF8.self) else { continue }
                if let visible, !visible.contains(name) { continue }
                let qidType = type == UInt8(DT_DIR) ? NineP.Qid.directory : type == UInt8(DT_LNK) ? NineP.Qid.symlink : NineP.Qid.file
                let entry = NineP.DirectoryEntry(qid: NineP.Qid(type: qidType, version: 0, path: inode), offset: next,
                                                 type: type, name: name)
                guard data.count + entry.encodedSize <= count else { return data }
                entry.encode(into: &data)
            }
        }
        return data
    }

    /// The top's entries: the exports by name, from the `offset`th (each entry's offset is
    /// the next one's index), as many as fit in `count` bytes.
    private func topEntries(offset: UInt64, count: Int) -> [UInt8] {
        guard case .named(let table) = exports else { return [] }
        var data: [UInt8] = []
        for (index, (name, directory)) in table.sorted(by: { $0.key < $1.key }).enumerated() where UInt64(index) >= offset {
            guard case .success(let status) = directory.status(.root) else { continue }
            let entry = NineP.DirectoryEntry(qid: Self.qid(status), offset: UInt64(index + 1), type: UInt8(DT_DIR), name: name)
            guard data.count + entry.encodedSize <= count else { break }
            entry.encode(into: &data)
        }
        return data
    }

    // MARK: Conversions

    private static func check(_ result: Int32) -> Result<Void, NinePError> {
        result == 0 ? .success(()) : .failure(.last)
    }

    /// fchmodat2 where the kernel has it: glibc's fchmodat with AT_SYMLINK_NOFOLLOW goes
    /// through /proc/self/fd, which a jailed VM process cannot see.
    private static func changeMode(_ directory: Int32, _ name: String, _ mode: mode_t) -> Result<Void, NinePError> {
        let result = clinux_fchmodat2(directory, name, mode, AT_SYMLINK_NOFOLLOW)
        if result == -ENOSYS { return check(fchmodat(directory, name, mode, AT_SYMLINK_NOFOLLOW)) }
        return result == 0 ? .success(()) : .failure(NinePError(-result))
    }

    /// Runs a vectored call over `buffers`, cut to `limit` bytes in all.
    private static func vectored(_ buffers: [UnsafeRawBufferPointer], limit: Int,
                                 _ call: (UnsafePointer<iovec>, Int32) -> Int) -> Int {
        var vectors: [iovec] = []
        var left = limit
        for buffer in buffers where left > 0 && buffer.count > 0 {
            let count = min(buffer.count, left)
            vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: buffer.baseAddress), iov_len: count))
            left -= count
        }
        guard !vectors.isEmpty else { return 0 }
        return vectors.withUnsafeBufferPointer { call($0.baseAddress!, Int32($0.count)) }
    }

    private static func flock(_ lock: NineP.Lock) -> Glibc.flock {
        var description = Glibc.flock()
        description.l_type = Int16(lock.type == NineP.Lock.readLock ? F_RDLCK : lock.type == NineP.Lock.writeLock ? F_WRLCK : F_UNLCK)
        description.l_whence = Int16(SEEK_SET)
        description.l_start = off_t(truncatingIfNeeded: lock.start)
        description.l_len = off_t(truncatingIfNeeded: lock.length)
        return description
    }

    static func qid(_ status: stat) -> NineP.Qid {
        let kind = status.st_mode & S_IFMT
        let type = kind == S_IFDIR ? NineP.Qid.directory : kind == S_IFLNK ? NineP.Qid.symlink : NineP.Qid.file
        return NineP.Qid(type: type, version: UInt32(truncatingIfNeeded: status.st_mtim.tv_sec ^ status.st_mtim.tv_nsec),
                         path: UInt64(status.st_ino))
    }

    static func attributes(_ status: stat) -> NineP.Attributes {
        var attributes = NineP.Attributes()
        attributes.valid = NineP.Attributes.basic
        attributes.qid = qid(status)
        attributes.mode = UInt32(status.st_mode)
        attributes.uid = status.st_uid
        attributes.gid = status.st_gid
        attributes.linkCount = UInt64(status.st_nlink)
        attributes.rdev = UInt64(status.st_rdev)
        attributes.size = UInt64(status.st_size)
        attributes.blockSize = UInt64(status.st_blksize)
        attributes.blocks = UInt64(status.st_blocks)
        func time(_ value: timespec) -> NineP.Time {
            NineP.Time(seconds: UInt64(bitPattern: Int64(value.tv_sec)), nanoseconds: UInt64(value.tv_nsec))
        }
        attributes.accessTime = time(status.st_atim)
        attributes.modificationTime = time(status.st_mtim)
        attributes.changeTime = time(status.st_ctim)
        return attributes
    }
}

/// What a share allows of a change, checked per directory: each fid's own.
private extension SharedDirectory {
    func modifying() throws(NinePError) {
        if isReadOnly { throw .readOnly }
    }

    /// A share of single files keeps its top level as the host made it: the guest may change
    /// what the files hold, never which entries are there (a link or FIFO put in a file's
    /// place would reach whoever uses the directory on the host).
    func changingEntry(_ path: SharePath) throws(NinePError) {
        if visibleEntries != nil, path.parent.isRoot { throw NinePError(EPERM) }
    }

    func inParent(_ path: SharePath, _ body: (Int32, String) -> Result<Void, NinePError>) throws(NinePError) {
        try withParent(path, body).get()
    }

    /// The permission bits of a mode the guest gives a file: setuid (and setgid, but on a
    /// directory, where it only passes the group on) are taken off unless the share keeps
    /// them, so that a guest cannot leave set-id programs on the host.
    func permitted(_ mode: UInt32, directory isDirectory: Bool) -> mode_t {
        var bits = mode_t(mode & 0o7777)
        if !keepsSetID { bits &= isDirectory ? ~S_ISUID : ~(S_ISUID | S_ISGID) }
        return bits
    }
}

extension NinePServer {
    /// Stands where a share of one directory saves its msize, which is never 0: the state
    /// of a share of exports, whose fids each carry their export's name. A share of one
    /// directory saves what it always has.
    private static let exportsMarker: UInt32 = 0

    /// The session: msize, the attached user, and every fid with its export's name (on a
    /// share of exports), its path and, for an open one, how it was opened. Locks are not
    /// kept: they belong to the host's open files.
    public func saveState(into writer: inout StateWriter) {
        if hasExports { writer.put(Self.exportsMarker) }
        writer.put(UInt32(messageSize))
        writer.put(user)
        writer.put(UInt32(fids.count))
        for (number, fid) in fids.sorted(by: { $0.key < $1.key }) {
            writer.put(number)
            if hasExports { writer.put(fid.export.name) }
            let names = fid.path.names
            writer.put(UInt32(names.count))
            for name in names { writer.put(String(name)) }
            writer.put(fid.file >= 0)
            writer.put(fid.writable)
            writer.put(fid.openFlags)
            writer.put(fid.isAttributeList)
        }
    }

    /// Rebuilds the session on this host. A file that was open is opened again by its path,
    /// without creating or truncating; one that is gone leaves its fid closed, and the
    /// guest's next use of it gets EBADF, as for a file removed under an NFS client. On a
    /// share of exports each fid goes back on the export of its name, which must be bound
    /// already: a state with a fid of an export that is not is refused.
    public func restoreState(from reader: inout StateReader) throws(StateError) {
        var size = try reader.get(UInt32.self, "9p msize")
        guard (size == Self.exportsMarker) == hasExports else { throw .invalid(what: "9p export table") }
        if hasExports { size = try reader.get(UInt32.self, "9p msize") }
        guard (Self.minimumMessageSize...Self.maximumMessageSize).contains(Int(size)) else { throw .invalid(what: "9p msize") }
        let user = try reader.get(UInt32.self, "9p user")
        let count = Int(try reader.get(UInt32.self, "9p fid count"))
        guard count <= Self.maximumFids else { throw .invalid(what: "9p fid count") }
        var restored: [UInt32: Fid] = [:]
        // Reopened once every fid has been read, so that a state refused halfway leaves no file open.
        var wereOpen: Set<UInt32> = []
        for _ in 0..<count {
            let number = try reader.get(UInt32.self, "9p fid")
            let export = try restoredExport(from: &reader)
            let depth = Int(try reader.get(UInt32.self, "9p path depth"))
            guard depth <= SharedDirectory.maximumPathLength else { throw .invalid(what: "9p path") }
            var names: [String] = []
            for _ in 0..<depth {
                let name = try reader.string("9p name", limit: 255)
                guard SharedDirectory.isName(name) else { throw .invalid(what: "9p name") }
                names.append(name)
            }
            let path = SharePath(names)
            guard path.length <= SharedDirectory.maximumPathLength else { throw .invalid(what: "9p path") }
            var fid = Fid(path: path, export: export)
            let open = try reader.bool("9p open")
            fid.writable = try reader.bool("9p writable")
            fid.openFlags = try reader.get(Int32.self, "9p open flags")
            guard fid.openFlags & ~Self.allowedOpenFlags == 0 else { throw .invalid(what: "9p open flags") }
            fid.isAttributeList = try reader.bool("9p attribute list")
            restored[number] = fid
            if open { wereOpen.insert(number) } else { wereOpen.remove(number) }
        }
        closeAll()
        var reopened = 0
        for (number, fid) in restored.sorted(by: { $0.key < $1.key }) where wereOpen.contains(number) {
            guard reopened < Self.maximumOpenFiles else { break }
            let file = reopen(fid)
            guard file >= 0 else { continue }
            restored[number]?.file = file
            reopened += 1
        }
        messageSize = Int(size)
        self.user = user
        fids = restored
        openFiles = reopened
    }

    private var hasExports: Bool {
        if case .named = exports { return true }
        return false
    }

    /// The directory a saved fid was attached to: its export's, by name, on a share of exports.
    private func restoredExport(from reader: inout StateReader) throws(StateError) -> NinePExport {
        switch exports {
        case .one(let directory):
            return NinePExport(name: "", directory: directory)
        case .named(let table):
            let name = try reader.string("9p export name", limit: NinePExport.maximumNameLength)
            if name.isEmpty, let top { return NinePExport(name: "", directory: top) }
            guard NinePExport.isName(name) else { throw .invalid(what: "9p export name") }
            guard let directory = table[name] else { throw .missing(what: "9p export \(name.debugDescription)") }
            return NinePExport(name: name, directory: directory)
        }
    }

    private func reopen(_ fid: Fid) -> Int32 {
        let flags = fid.openFlags & ~(O_CREAT | O_EXCL | O_TRUNC)
        let reopened = try? fid.directory.open(fid.path, flags: flags).get()
        return reopened ?? -1
    }
}
