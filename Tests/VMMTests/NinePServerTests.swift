@testable import Devices
import Glibc
@testable import Memory
import Testing

/// A directory made for one test, removed with everything in it afterwards.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/microvm-9p-XXXXXX".utf8CString)
        path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    }

    deinit {
        // mkdtemp's names need no quoting.
        _ = system("chmod -R u+rwx \(path) 2>/dev/null; rm -rf \(path)")
    }

    func write(_ name: String, _ contents: String) {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = contents.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }

    func read(_ name: String) -> String? {
        let fd = open(path + "/" + name, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = Glibc.read(fd, &buffer, buffer.count)
        return String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
    }

    func exists(_ name: String) -> Bool { access(path + "/" + name, F_OK) == 0 }

    func mode(_ name: String) -> mode_t {
        var status = stat()
        lstat(path + "/" + name, &status)
        return status.st_mode & 0o7777
    }
}

/// A 9P client in a test: sends requests to a server and checks what comes back.
struct NinePClient {
    let server: NinePServer

    init(_ directory: TemporaryDirectory, subdirectory: String = "", readOnly: Bool = false, numericUser: UInt32 = 0) throws {
        try self.init(SharedDirectory(path: directory.path + subdirectory, readOnly: readOnly), numericUser: numericUser)
    }

    init(_ shared: SharedDirectory, numericUser: UInt32 = 0) throws {
        server = NinePServer(directory: shared)
        #expect(server.handle(.version(msize: 1 << 20, version: NineP.version))
                == .version(msize: UInt32(NinePServer.maximumMessageSize), version: NineP.version))
        guard case .attach = server.handle(.attach(fid: 0, authFid: NineP.noFid, user: "root", tree: "", numericUser: numericUser)) else {
            Issue.record("attach failed")
            return
        }
    }

    /// A client of a server already attached (one restored from a snapshot).
    init(server: NinePServer) {
        self.server = server
    }

    @discardableResult
    func send(_ request: NinePRequest) -> NinePResponse { server.handle(request) }

    func error(_ request: NinePRequest) -> UInt32? {
        if case .error(let errno) = server.handle(request) { return errno }
        return nil
    }

    @discardableResult
    func walk(_ fid: UInt32, _ names: String...) -> NinePResponse {
        server.handle(.walk(fid: 0, newFid: fid, names: names))
    }

    func write(_ fid: UInt32, _ text: String, at offset: UInt64 = 0) -> NinePResponse {
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBytes { server.handle(.write(fid: fid, offset: offset, count: UInt32($0.count)),
                                                            data: [UnsafeRawBufferPointer($0)]) }
    }

    func read(_ fid: UInt32, count: Int = 4096, at offset: UInt64 = 0) -> String? {
        var bytes = [UInt8](repeating: 0, count: count)
        let response = bytes.withUnsafeMutableBytes { server.handle(.read(fid: fid, offset: offset, count: UInt32(count)), into: [$0]) }
        guard case .read(let read) = response else { return nil }
        return String(decoding: bytes.prefix(Int(read)), as: UTF8.self)
    }

    func names(in fid: UInt32) -> [String] {
        guard case .readdir(let data) = send(.readdir(fid: fid, offset: 0, count: 65536)),
              let entries = try? NineP.DirectoryEntry.decode(data) else { return [] }
        return entries.map(\.name).filter { $0 != "." && $0 != ".." }.sorted()
    }
}

@Suite struct NinePServerTests {
    let directory = TemporaryDirectory()

    @Test func createsWritesReadsListsRenamesChmodsAndRemoves() throws {
        let client = try NinePClient(directory)
        guard case .walk = client.walk(1) else { Issue.record("clone failed"); return }
        guard case .lcreate = client.send(.lcreate(fid: 1, name: "a.txt", flags: UInt32(O_RDWR), mode: 0o640, gid: 0)) else {
            Issue.record("create failed"); return
        }
        #expect(client.write(1, "hello, host") == .write(count: 11))
        #expect(client.read(1) == "hello, host")
        #expect(client.read(1, count: 5, at: 7) == "host")
        #expect(directory.read("a.txt") == "hello, host")
        #expect(directory.mode("a.txt") == 0o640)

        #expect(client.send(.mkdir(directory: 0, name: "sub", mode: 0o700, gid: 0)) != .error(errno: 0))
        #expect(client.send(.renameat(oldDirectory: 0, oldName: "a.txt", newDirectory: 0, newName: "b.txt")) == .renameat)
        // The fid follows its file: it still reads it under the new name.
        #expect(client.read(1) == "hello, host")
        #expect(client.send(.setattr(fid: 1, NineP.SetAttributes(valid: NineP.SetAttributes.mode, mode: 0o600))) == .setattr)
        #expect(directory.mode("b.txt") == 0o600)
        #expect(client.send(.setattr(fid: 1, NineP.SetAttributes(valid: NineP.SetAttributes.size, size: 5))) == .setattr)
        #expect(directory.read("b.txt") == "hello")

        guard case .walk = client.walk(2) else { Issue.record("clone failed"); return }
        guard case .lopen = client.send(.lopen(fid: 2, flags: UInt32(O_RDONLY | O_DIRECTORY))) else { Issue.record("open failed"); return }
        #expect(client.names(in: 2) == ["b.txt", "sub"])

        #expect(client.send(.clunk(fid: 1)) == .clunk)
        #expect(client.send(.unlinkat(directory: 0, name: "b.txt", flags: 0)) == .unlinkat)
        #expect(client.send(.unlinkat(directory: 0, name: "sub", flags: 0x200)) == .unlinkat)
        #expect(!directory.exists("b.txt") && !directory.exists("sub"))
        #expect(client.error(.clunk(fid: 1)) == NineP.Errno.badFile)
    }

    @Test func readdirContinuesFromTheOffsetOfTheLastEntry() throws {
        for index in 0..<300 { directory.write("file-\(index)", "") }
        let client = try NinePClient(directory)
        client.walk(1)
        client.send(.lopen(fid: 1, flags: UInt32(O_RDONLY)))
        var names: [String] = []
        var offset: UInt64 = 0
        while case .readdir(let data) = client.send(.readdir(fid: 1, offset: offset, count: 512)), !data.isEmpty {
            let entries = try NineP.DirectoryEntry.decode(data)
            names += entries.map(\.name)
            offset = entries.last!.offset
            #expect(data.count <= 512)
        }
        #expect(Set(names).count == 302)
        #expect(names.count == 302)
    }

    @Test func walkingUpStopsAtTheRootOfTheShare() throws {
        let client = try NinePClient(directory)
        guard case .attach(let root) = client.send(.attach(fid: 9, authFid: NineP.noFid, user: "", tree: "", numericUser: 0)),
              case .walk(let qids) = client.walk(1, "..", "..", "..") else { Issue.record("walk failed"); return }
        #expect(qids == [root, root, root])
        client.send(.lopen(fid: 1, flags: UInt32(O_RDONLY)))
        directory.write("inside", "")
        #expect(client.names(in: 1) == ["inside"])
    }

    @Test func symlinksAreNeverFollowedOnTheHost() throws {
        mkdir(directory.path + "/share", 0o755)
        directory.write("secret", "outside the share")
        symlink("/etc", directory.path + "/share/absolute")
        symlink("../../", directory.path + "/share/relative")
        symlink("../secret", directory.path + "/share/up")
        mkdir(directory.path + "/share/dir", 0o755)
        let client = try NinePClient(directory, subdirectory: "/share")
        for link in ["absolute", "relative", "up"] {
            // The link itself can be walked to and read; it is the guest that resolves it.
            guard case .walk(let qids) = client.walk(1, link) else { Issue.record("walk to \(link) failed"); return }
            #expect(qids.first?.type == NineP.Qid.symlink)
            guard case .readlink = client.send(.readlink(fid: 1)) else { Issue.record("readlink failed"); return }
            #expect(client.error(.lopen(fid: 1, flags: UInt32(O_RDONLY))) == UInt32(ELOOP))
            #expect(client.error(.walk(fid: 1, newFid: 2, names: ["passwd"])) == UInt32(ELOOP))
            // Walking through the link stops at it: a partial walk, and no fid 2.
            guard case .walk(let partial) = client.send(.walk(fid: 0, newFid: 2, names: [link, "passwd"])) else {
                Issue.record("walk through \(link) failed"); return
            }
            #expect(partial.count == 1)
            #expect(client.error(.getattr(fid: 2, mask: 0)) == NineP.Errno.badFile)
            #expect(client.error(.lcreate(fid: 1, name: "x", flags: UInt32(O_RDWR), mode: 0o644, gid: 0)) != nil)
            #expect(client.error(.setattr(fid: 1, NineP.SetAttributes(valid: NineP.SetAttributes.size, size: 0))) == UInt32(ELOOP))
            client.send(.clunk(fid: 1))
        }
        // A name that is a path is refused, and a created file never lands through a link.
        #expect(client.error(.walk(fid: 0, newFid: 3, names: ["../secret"])) == NineP.Errno.noEntry)
        #expect(client.error(.mkdir(directory: 0, name: "absolute/x", mode: 0o755, gid: 0)) == NineP.Errno.invalid)
        client.walk(4, "absolute")
        #expect(client.error(.mkdir(directory: 4, name: "x", mode: 0o755, gid: 0)) == NineP.Errno.notDirectory)
        #expect(client.send(.setattr(fid: 4, NineP.SetAttributes(valid: NineP.SetAttributes.mode, mode: 0o777))) != .setattr)
        #expect(directory.read("secret") == "outside the share")
        #expect(directory.mode("secret") == 0o644)
    }

    @Test func aReadOnlyShareRefusesEveryChange() throws {
        directory.write("file", "data")
        let client = try NinePClient(directory, readOnly: true)
        client.walk(1, "file")
        client.walk(2)
        let changes: [NinePRequest] = [
            .lopen(fid: 1, flags: UInt32(O_WRONLY)), .lopen(fid: 1, flags: UInt32(O_RDONLY | O_TRUNC)),
            .lcreate(fid: 2, name: "new", flags: UInt32(O_RDWR), mode: 0o644, gid: 0),
            .setattr(fid: 1, NineP.SetAttributes(valid: NineP.SetAttributes.mode, mode: 0o600)),
            .mkdir(directory: 0, name: "d", mode: 0o755, gid: 0), .unlinkat(directory: 0, name: "file", flags: 0),
            .renameat(oldDirectory: 0, oldName: "file", newDirectory: 0, newName: "moved"),
            .rename(fid: 1, directory: 0, name: "moved"), .symlink(directory: 0, name: "l", target: "file", gid: 0),
            .link(directory: 0, fid: 1, name: "hard"), .mknod(directory: 0, name: "p", mode: 0o10644, major: 0, minor: 0, gid: 0),
            .xattrcreate(fid: 1, name: "user.a", size: 1, flags: 0),
        ]
        for request in changes {
            #expect(client.error(request) == NineP.Errno.readOnly, "\(request)")
        }
        #expect(client.error(.remove(fid: 1)) == NineP.Errno.readOnly)
        #expect(directory.read("file") == "data")
        client.walk(3, "file")
        guard case .lopen = client.send(.lopen(fid: 3, flags: UInt32(O_RDONLY))) else { Issue.record("read-only open failed"); return }
        #expect(client.read(3) == "data")
        #expect(client.error(.write(fid: 3, offset: 0, count: 0)) == NineP.Errno.readOnly)
    }

    @Test func deviceNodesAndFifosCannotBeUsedToReachTheHost() throws {
        let client = try NinePClient(directory)
        #expect(client.error(.mknod(directory: 0, name: "disk", mode: UInt32(S_IFBLK) | 0o600, major: 8, minor: 0, gid: 0))
                == NineP.Errno.permission)
        #expect(client.error(.mknod(directory: 0, name: "tty", mode: UInt32(S_IFCHR) | 0o600, major: 5, minor: 0, gid: 0))
                == NineP.Errno.permission)
        guard case .mknod = client.send(.mknod(directory: 0, name: "pipe", mode: UInt32(S_IFIFO) | 0o600, major: 0, minor: 0, gid: 0)) else {
            Issue.record("mkfifo failed"); return
        }
        // Opening a FIFO would block the thread that serves the guest: refused.
        client.walk(1, "pipe")
        #expect(client.error(.lopen(fid: 1, flags: UInt32(O_RDONLY))) == NineP.Errno.permission)
    }

    @Test func fidsAndOpenFilesAreBounded() throws {
        directory.write("file", "x")
        let client = try NinePClient(directory)
        for fid in 1..<UInt32(NinePServer.maximumOpenFiles + 1) {
            guard case .walk = client.walk(fid, "file"), case .lopen = client.send(.lopen(fid: fid, flags: UInt32(O_RDONLY))) else {
                Issue.record("fid \(fid) failed"); return
            }
        }
        let next = UInt32(NinePServer.maximumOpenFiles + 1)
        client.walk(next, "file")
        #expect(client.error(.lopen(fid: next, flags: UInt32(O_RDONLY))) == NineP.Errno.tooManyFiles)
        #expect(client.server.openFileCount == NinePServer.maximumOpenFiles)
        for fid in (next + 1)..<UInt32(NinePServer.maximumFids) { client.walk(fid) }
        #expect(client.server.fidCount == NinePServer.maximumFids)
        #expect(client.error(.walk(fid: 0, newFid: 99_999, names: [])) == NineP.Errno.tooManyFiles)
        // Tversion starts over: every fid is dropped and every file closed.
        client.send(.version(msize: 8192, version: NineP.version))
        #expect(client.server.fidCount == 0 && client.server.openFileCount == 0)
    }

    @Test func unknownVersionsSmallMessagesAndMissingFidsAreAnswered() throws {
        let client = try NinePClient(directory)
        #expect(client.send(.version(msize: 8192, version: "9P2000.u")) == .version(msize: 8192, version: "unknown"))
        #expect(client.error(.version(msize: 100, version: NineP.version)) == NineP.Errno.invalid)
        #expect(client.error(.auth(authFid: 1, user: "", tree: "", numericUser: 0)) == NineP.Errno.notSupported)
        #expect(client.error(.getattr(fid: 77, mask: 0)) == NineP.Errno.badFile)
        #expect(client.error(.read(fid: 77, offset: 0, count: 1)) == NineP.Errno.badFile)
    }

    @Test func locksAreTakenOnTheOpenFile() throws {
        directory.write("file", "x")
        let client = try NinePClient(directory)
        for fid: UInt32 in [1, 2] {
            client.walk(fid, "file")
            client.send(.lopen(fid: fid, flags: UInt32(O_RDWR)))
        }
        let lock = NineP.Lock(type: NineP.Lock.writeLock, start: 0, length: 0, processID: 1, clientID: "guest")
        #expect(client.send(.lock(fid: 1, lock, flags: 0)) == .lock(status: NineP.LockStatus.success))
        #expect(client.send(.lock(fid: 2, lock, flags: 0)) == .lock(status: NineP.LockStatus.blocked))
        guard case .getlock(let held) = client.send(.getlock(fid: 2, lock)) else { Issue.record("getlock failed"); return }
        #expect(held.type == NineP.Lock.writeLock)
        var unlock = lock
        unlock.type = NineP.Lock.unlock
        #expect(client.send(.lock(fid: 1, unlock, flags: 0)) == .lock(status: NineP.LockStatus.success))
        #expect(client.send(.lock(fid: 2, lock, flags: 0)) == .lock(status: NineP.LockStatus.success))
    }

    @Test func sharingRefusesFilesAndMissingDirectories() {
        directory.write("file", "")
        #expect(throws: SharedDirectory.Error.notADirectory(path: directory.path + "/file")) {
            try SharedDirectory(path: directory.path + "/file", readOnly: false)
        }
        #expect(throws: SharedDirectory.Error.self) { try SharedDirectory(path: directory.path + "/missing", readOnly: false) }
    }
}
