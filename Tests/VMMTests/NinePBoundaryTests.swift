@testable import Devices
import Glibc
import Testing

/// What a guest can do to the host through a share, tried as an attacker would: every
/// way to open a file opens only regular files and directories, numbers from the guest
/// never trap, set-id bits and owners stay the host's to give, and a share of single
/// files shows nothing else of their directory.
@Suite struct NinePBoundaryTests {
    let directory = TemporaryDirectory()
    private static let isRoot = geteuid() == 0

    /// A FIFO the host (or an image's layer) put in the share, and, as root, a character
    /// device node for /dev/null: what a guest must never open.
    private func plantNodes() -> [String] {
        #expect(mkfifo(directory.path + "/pipe", 0o666) == 0)
        guard Self.isRoot else { return ["pipe"] }
        // Device 1:3 (/dev/null), in the old encoding that small numbers keep.
        #expect(mknod(directory.path + "/null", S_IFCHR | 0o666, dev_t(1 << 8 | 3)) == 0)
        return ["pipe", "null"]
    }

    @Test func lcreateOnAnExistingNodeNeverOpensIt() throws {
        let client = try NinePClient(directory)
        for (fid, node) in zip(UInt32(1)..., plantNodes()) {
            client.walk(fid)
            #expect(client.error(.lcreate(fid: fid, name: node, flags: UInt32(O_RDWR), mode: 0o644, gid: 0)) == NineP.Errno.permission,
                    "Tlcreate opened \(node)")
            #expect(client.server.openFileCount == 0)
        }
    }

    @Test func setattrOfTheSizeNeverOpensANode() throws {
        let client = try NinePClient(directory)
        for (fid, node) in zip(UInt32(1)..., plantNodes()) {
            client.walk(fid, node)
            #expect(client.error(.setattr(fid: fid, NineP.SetAttributes(valid: NineP.SetAttributes.size, size: 0)))
                    == NineP.Errno.permission, "Tsetattr opened \(node)")
        }
    }

    @Test func aRestoredFidWhoseFileBecameANodeStaysClosed() throws {
        directory.write("file", "x")
        let client = try NinePClient(directory)
        client.walk(1, "file")
        client.send(.lopen(fid: 1, flags: UInt32(O_RDONLY)))
        var writer = StateWriter()
        client.server.saveState(into: &writer)
        unlink(directory.path + "/file")
        #expect(mkfifo(directory.path + "/file", 0o666) == 0)
        let restored = NinePServer(directory: try SharedDirectory(path: directory.path, readOnly: false))
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        #expect(restored.openFileCount == 0)
        #expect(NinePClient(server: restored).error(.read(fid: 1, offset: 0, count: 1)) == NineP.Errno.badFile)
    }

    @Test func aLockReachingBackToTheStartIsAnswered() throws {
        directory.write("file", "some bytes")
        let client = try NinePClient(directory)
        client.walk(1, "file")
        client.send(.lopen(fid: 1, flags: UInt32(O_RDWR)))
        // A length of -1 (bytes before start) comes back as the host left it: no trap.
        let lock = NineP.Lock(type: NineP.Lock.writeLock, start: 5, length: UInt64.max, processID: 1, clientID: "guest")
        guard case .getlock(let answer) = client.send(.getlock(fid: 1, lock)) else { Issue.record("getlock failed"); return }
        #expect(answer.type == NineP.Lock.unlock)
        #expect(client.error(.getlock(fid: 1, NineP.Lock(type: NineP.Lock.readLock, start: UInt64.max, length: UInt64.max,
                                                         processID: 1, clientID: "guest"))) == NineP.Errno.invalid)
    }

    @Test func setIDBitsAreTakenOffUnlessTheShareKeepsThem() throws {
        let client = try NinePClient(directory)
        client.walk(1)
        client.send(.lcreate(fid: 1, name: "made", flags: UInt32(O_RDWR), mode: 0o6755, gid: 0))
        #expect(directory.mode("made") == 0o755)
        #expect(client.send(.setattr(fid: 1, NineP.SetAttributes(valid: NineP.SetAttributes.mode, mode: 0o4711))) == .setattr)
        #expect(directory.mode("made") == 0o711)
        client.send(.mkdir(directory: 0, name: "dir", mode: 0o755, gid: 0))
        client.walk(2, "dir")
        #expect(client.send(.setattr(fid: 2, NineP.SetAttributes(valid: NineP.SetAttributes.mode, mode: 0o6775))) == .setattr)
        // A directory keeps setgid, which only passes its group on to what is made in it.
        #expect(directory.mode("dir") == 0o2775)
        client.send(.mknod(directory: 0, name: "node", mode: UInt32(S_IFREG) | 0o4755, major: 0, minor: 0, gid: 0))
        #expect(directory.mode("node") == 0o755)

        let keeping = try NinePClient(SharedDirectory(path: directory.path, readOnly: false, keepsSetID: true))
        keeping.walk(1)
        keeping.send(.lcreate(fid: 1, name: "kept", flags: UInt32(O_RDWR), mode: 0o4755, gid: 0))
        #expect(directory.mode("kept") == 0o4755)
    }

    @Test func aShareOfSingleFilesShowsNothingElse() throws {
        directory.write("hosts", "127.0.0.1 localhost\n")
        directory.write("config.json", "{}")
        #expect(mkdir(directory.path + "/secret", 0o755) == 0)
        let client = try NinePClient(SharedDirectory(path: directory.path, readOnly: false, visibleEntries: ["hosts"]))
        client.send(.lopen(fid: 0, flags: UInt32(O_RDONLY | O_DIRECTORY)))
        #expect(client.names(in: 0) == ["hosts"])
        guard case .walk = client.walk(1, "hosts") else { Issue.record("the visible file cannot be walked to"); return }
        client.send(.lopen(fid: 1, flags: UInt32(O_RDWR)))
        #expect(client.read(1) == "127.0.0.1 localhost\n")
        #expect(client.error(.walk(fid: 0, newFid: 2, names: ["config.json"])) == UInt32(ENOENT))
        #expect(client.error(.walk(fid: 0, newFid: 2, names: ["secret"])) == UInt32(ENOENT))
        client.walk(3)
        #expect(client.error(.lcreate(fid: 3, name: "new", flags: UInt32(O_RDWR), mode: 0o644, gid: 0)) == NineP.Errno.permission)
        #expect(client.error(.renameat(oldDirectory: 0, oldName: "hosts", newDirectory: 0, newName: "config.json")) == NineP.Errno.permission)
        #expect(client.error(.unlinkat(directory: 0, name: "config.json", flags: 0)) == NineP.Errno.permission)
        #expect(directory.read("config.json") == "{}")
        // The shared file's own entry stays as the host made it: no link or FIFO in its place.
        #expect(client.error(.unlinkat(directory: 0, name: "hosts", flags: 0)) == NineP.Errno.permission)
        #expect(client.error(.remove(fid: 1)) == NineP.Errno.permission)
        #expect(client.error(.symlink(directory: 0, name: "hosts", target: "/etc/shadow", gid: 0)) == NineP.Errno.permission)
        #expect(directory.read("hosts") == "127.0.0.1 localhost\n")
        #expect(throws: SharedDirectory.Error.badEntry(path: directory.path, name: "a/b")) {
            try SharedDirectory(path: directory.path, readOnly: false, visibleEntries: ["a/b"])
        }
    }

    @Test(.enabled(if: isRoot, "giving files owners needs root"))
    func ownersGoThroughTheIDMappings() throws {
        let mappings = [IDMapping(containerID: 0, hostID: 100_000, size: 65536)]
        let client = try NinePClient(SharedDirectory(path: directory.path, readOnly: false, userIDs: mappings, groupIDs: mappings),
                                     numericUser: 1000)
        client.walk(1)
        client.send(.lcreate(fid: 1, name: "made", flags: UInt32(O_RDWR), mode: 0o644, gid: 1000))
        var status = stat()
        lstat(directory.path + "/made", &status)
        #expect(status.st_uid == 101_000 && status.st_gid == 101_000)
        guard case .getattr(let attributes) = client.send(.getattr(fid: 1, mask: 0)) else { Issue.record("getattr failed"); return }
        #expect(attributes.uid == 1000 && attributes.gid == 1000)
        // An id the mappings do not hold owns nothing; a host owner they do not hold shows as the overflow id.
        #expect(client.error(.setattr(fid: 1, NineP.SetAttributes(valid: NineP.SetAttributes.uid, uid: 70_000))) == NineP.Errno.invalid)
        directory.write("host-owned", "")
        client.walk(2, "host-owned")
        guard case .getattr(let hostOwned) = client.send(.getattr(fid: 2, mask: 0)) else { Issue.record("getattr failed"); return }
        #expect(hostOwned.uid == IDMapping.overflowID)
    }

    @Test(.enabled(if: isRoot, "giving files owners needs root"))
    func lcreateOfAnExistingFileDoesNotGiveItAway() throws {
        directory.write("hosts", "kept")
        let client = try NinePClient(directory, numericUser: 1000)
        client.walk(1)
        guard case .lcreate = client.send(.lcreate(fid: 1, name: "hosts", flags: UInt32(O_RDWR), mode: 0o644, gid: 1000)) else {
            Issue.record("opening an existing file through Tlcreate failed"); return
        }
        var status = stat()
        lstat(directory.path + "/hosts", &status)
        #expect(status.st_uid == 0 && status.st_gid == 0)
    }
}
