@testable import Devices
import Glibc
@testable import Memory
import Testing

/// A guest's 9p client on one virtio-9p device: each request through the device's queue.
struct NinePDeviceClient {
    var driver: SimulatedDriver
    let device: Virtio9P

    static let request: UInt64 = 0x10000
    static let answer: UInt64 = 0x20000
    static let answerSize = 8192

    init(_ device: Virtio9P) throws {
        driver = try SimulatedDriver(size: 16)
        self.device = device
        device.activate(queues: [try driver.queue()], features: Virtio9P.Feature.mountTag, interrupt: RecordingInterrupt())
    }

    @discardableResult
    mutating func send(_ request: NinePRequest) throws -> NinePResponse {
        let bytes = request.encode(tag: 1)
        try driver.memory.write(bytes, at: GuestAddress(Self.request))
        try driver.post([(Self.request, UInt32(bytes.count), false), (Self.answer, UInt32(Self.answerSize), true)])
        device.queueNotified(0)
        let answer = try NinePResponse.decode(try driver.memory.read(at: GuestAddress(Self.answer), count: Self.answerSize))
        #expect(answer.tag == 1)
        return answer.response
    }

    mutating func error(_ request: NinePRequest) throws -> UInt32? {
        if case .error(let errno) = try send(request) { return errno }
        return nil
    }

    mutating func mount() throws {
        #expect(try send(.version(msize: 65536, version: NineP.version)) == .version(msize: 65536, version: NineP.version))
    }

    mutating func attach(_ fid: UInt32, _ name: String) throws -> NinePResponse {
        try send(.attach(fid: fid, authFid: NineP.noFid, user: "root", tree: name, numericUser: 0))
    }

    /// What the file at `names` beneath `root` holds, read through a new fid `fid`.
    mutating func read(_ names: [String], from root: UInt32, fid: UInt32) throws -> String? {
        guard case .walk = try send(.walk(fid: root, newFid: fid, names: names)),
              case .lopen = try send(.lopen(fid: fid, flags: UInt32(O_RDONLY))) else { return nil }
        return try read(fid)
    }

    mutating func read(_ fid: UInt32) throws -> String? {
        guard case .read(let count) = try send(.read(fid: fid, offset: 0, count: 4096)) else { return nil }
        let data = try driver.memory.read(at: GuestAddress(Self.answer + UInt64(NinePResponse.readHeaderSize)), count: Int(count))
        return String(decoding: data, as: UTF8.self)
    }
}

@Suite struct NinePExportTests {
    let one = TemporaryDirectory()
    let two = TemporaryDirectory()

    init() {
        one.write("file", "in one")
        two.write("file", "in two")
    }

    func exports(readOnly: Bool = false) throws -> [String: SharedDirectory] {
        ["one": try SharedDirectory(path: one.path, readOnly: readOnly), "two": try SharedDirectory(path: two.path, readOnly: false)]
    }

    @Test func eachAttachReachesTheExportItsAnameNames() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        try client.mount()
        guard case .attach = try client.attach(0, "one"), case .attach = try client.attach(1, "two") else {
            Issue.record("attach failed"); return
        }
        #expect(try client.read(["file"], from: 0, fid: 10) == "in one")
        #expect(try client.read(["file"], from: 1, fid: 11) == "in two")
    }

    @Test func anEmptyOrUnknownAnameIsNoEntry() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        try client.mount()
        for name in ["", "three", "ONE", "one/", "one/..", "/one"] {
            #expect(try client.error(.attach(fid: 0, authFid: NineP.noFid, user: "root", tree: name, numericUser: 0))
                    == NineP.Errno.noEntry, "aname \(name.debugDescription)")
        }
        #expect(client.device.fidCount == 0)
    }

    @Test func aShareOfOneDirectoryIgnoresTheAname() throws {
        var client = try NinePDeviceClient(Virtio9P(directory: try SharedDirectory(path: one.path, readOnly: false), tag: "src"))
        try client.mount()
        guard case .attach = try client.attach(0, "two") else { Issue.record("attach failed"); return }
        #expect(try client.read(["file"], from: 0, fid: 1) == "in one")
        #expect(throws: NinePExportError.oneDirectory) { try client.device.bind(exports: try exports()) }
    }

    @Test func exportsBoundAfterActivationServeTheNextAttaches() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares"))
        try client.mount()
        #expect(try client.error(.attach(fid: 0, authFid: NineP.noFid, user: "root", tree: "one", numericUser: 0))
                == NineP.Errno.noEntry)
        try client.device.bind(exports: ["one": try SharedDirectory(path: one.path, readOnly: false)])
        guard case .attach = try client.attach(0, "one") else { Issue.record("attach failed"); return }
        #expect(try client.read(["file"], from: 0, fid: 1) == "in one")
        // Bound again to another directory: new attaches reach it, fids made already stay.
        try client.device.bind(exports: ["one": try SharedDirectory(path: two.path, readOnly: false)])
        guard case .attach = try client.attach(2, "one") else { Issue.record("attach failed"); return }
        #expect(try client.read(["file"], from: 2, fid: 3) == "in two")
        #expect(try client.read(1) == "in one")
        #expect(try client.read(["file"], from: 0, fid: 4) == "in one")
    }

    @Test func walkingUpAtAnExportsRootStaysInIt() throws {
        #expect(mkdir(one.path + "/inner", 0o755) == 0)
        one.write("inner/only", "")
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: [
            "inner": try SharedDirectory(path: one.path + "/inner", readOnly: false),
            "two": try SharedDirectory(path: two.path, readOnly: false),
        ]))
        try client.mount()
        guard case .attach(let root) = try client.attach(0, "inner"), case .attach = try client.attach(1, "two"),
              case .walk(let qids) = try client.send(.walk(fid: 0, newFid: 2, names: ["..", "..", ".."])) else {
            Issue.record("walk failed"); return
        }
        #expect(qids == [root, root, root])
        // Up from the root and down again finds the export's own entries, never its neighbours'.
        guard case .walk(let partial) = try client.send(.walk(fid: 0, newFid: 3, names: ["..", "file"])) else {
            Issue.record("walk failed"); return
        }
        #expect(partial == [root])
        #expect(try client.error(.getattr(fid: 3, mask: 0)) == NineP.Errno.badFile)
        guard case .lopen = try client.send(.lopen(fid: 2, flags: UInt32(O_RDONLY | O_DIRECTORY))),
              case .readdir(let data) = try client.send(.readdir(fid: 2, offset: 0, count: 4096)) else {
            Issue.record("readdir failed"); return
        }
        #expect(try NineP.DirectoryEntry.decode(data).map(\.name).filter { $0 != "." && $0 != ".." } == ["only"])
    }

    /// Linux mounts a virtio-9p device once: an attach with no name reaches a top whose
    /// entries are the exports, read-only itself, each leading into its own directory.
    @Test func anAttachWithNoNameReachesEveryExportUnderTheTop() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports(), top: try SharedDirectory.empty()))
        try client.mount()
        guard case .attach = try client.attach(0, "") else { Issue.record("attach failed"); return }
        #expect(try client.read(["one", "file"], from: 0, fid: 10) == "in one")
        #expect(try client.read(["two", "file"], from: 0, fid: 11) == "in two")
        #expect(try client.error(.walk(fid: 0, newFid: 12, names: ["three"])) == UInt32(ENOENT))
        guard case .walk(let qids) = try client.send(.walk(fid: 0, newFid: 13, names: ["one", "..", "..", "file"])) else {
            Issue.record("walk failed"); return
        }
        #expect(qids.count == 4, "the export's root is its own parent: \(qids)")
        guard case .lopen = try client.send(.lopen(fid: 0, flags: UInt32(O_RDONLY | O_DIRECTORY))),
              case .readdir(let data) = try client.send(.readdir(fid: 0, offset: 0, count: 4096)) else {
            Issue.record("readdir failed"); return
        }
        let entries = try NineP.DirectoryEntry.decode(data)
        #expect(entries.map(\.name) == ["one", "two"])
        guard case .readdir(let rest) = try client.send(.readdir(fid: 0, offset: entries[0].offset, count: 4096)) else {
            Issue.record("readdir failed"); return
        }
        #expect(try NineP.DirectoryEntry.decode(rest).map(\.name) == ["two"])
        #expect(try client.error(.mkdir(directory: 0, name: "three", mode: 0o755, gid: 0)) == NineP.Errno.readOnly)
        // Without a top, a nameless attach reaches nothing.
        var bare = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        try bare.mount()
        #expect(try bare.error(.attach(fid: 0, authFid: NineP.noFid, user: "root", tree: "", numericUser: 0)) == UInt32(ENOENT))
    }

    @Test func aReadOnlyExportRefusesWritesWhileTheOtherTakesThem() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports(readOnly: true)))
        try client.mount()
        _ = try client.attach(0, "one")
        _ = try client.attach(1, "two")
        client.walk(2, from: 0)
        client.walk(3, from: 1)
        #expect(try client.error(.lcreate(fid: 2, name: "new", flags: UInt32(O_RDWR), mode: 0o644, gid: 0)) == NineP.Errno.readOnly)
        #expect(try client.error(.mkdir(directory: 0, name: "dir", mode: 0o755, gid: 0)) == NineP.Errno.readOnly)
        guard case .lcreate = try client.send(.lcreate(fid: 3, name: "new", flags: UInt32(O_RDWR), mode: 0o644, gid: 0)) else {
            Issue.record("create in the writable export failed"); return
        }
        #expect(!one.exists("new") && two.exists("new"))
        // Nothing moves from one export into another, whichever is writable.
        #expect(try client.error(.renameat(oldDirectory: 1, oldName: "new", newDirectory: 0, newName: "moved")) == UInt32(EXDEV))
        client.walk(4, from: 1, "file")
        #expect(try client.error(.link(directory: 0, fid: 4, name: "hard")) == UInt32(EXDEV))
        #expect(try client.error(.rename(fid: 4, directory: 0, name: "moved")) == UInt32(EXDEV))
        #expect(two.read("file") == "in two" && one.read("file") == "in one" && !one.exists("moved"))
    }

    @Test func aRenameMovesOnlyTheFidsOfItsOwnExport() throws {
        for directory in [one, two] {
            #expect(mkdir(directory.path + "/dir", 0o755) == 0)
            directory.write("dir/file", "beneath \(directory === one ? "one" : "two")")
        }
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        try client.mount()
        _ = try client.attach(0, "one")
        _ = try client.attach(1, "two")
        client.walk(2, from: 0, "dir", "file")
        client.walk(3, from: 1, "dir", "file")
        #expect(try client.send(.renameat(oldDirectory: 0, oldName: "dir", newDirectory: 0, newName: "moved")) == .renameat)
        #expect(try client.read([], from: 2, fid: 4) == "beneath one")
        #expect(try client.read([], from: 3, fid: 5) == "beneath two")
    }

    @Test func fidsAreBoundedOverAllExportsTogether() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        try client.mount()
        _ = try client.attach(0, "one")
        _ = try client.attach(1, "two")
        for fid in 2..<UInt32(NinePServer.maximumFids) { client.walk(fid, from: fid % 2) }
        #expect(client.device.fidCount == NinePServer.maximumFids)
        #expect(try client.error(.attach(fid: 99_999, authFid: NineP.noFid, user: "root", tree: "one", numericUser: 0))
                == NineP.Errno.tooManyFiles)
        #expect(try client.error(.walk(fid: 1, newFid: 99_999, names: [])) == NineP.Errno.tooManyFiles)
    }

    @Test func aSavedSessionGoesBackOnTheExportsOfItsNames() throws {
        var client = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        try client.mount()
        _ = try client.attach(0, "one")
        _ = try client.attach(1, "two")
        client.walk(2, from: 0, "file")
        client.walk(3, from: 1, "file")
        for fid: UInt32 in [2, 3] { try client.send(.lopen(fid: fid, flags: UInt32(O_RDONLY))) }
        let saved = savedBytes(client.device)

        // Bound before the restore, under the same names, to directories opened again.
        var restored = try NinePDeviceClient(try Virtio9P(tag: "shares", exports: try exports()))
        var reader = StateReader(saved)
        try restored.device.restoreState(from: &reader)
        #expect(reader.isAtEnd)
        #expect(savedBytes(restored.device) == saved)
        #expect(restored.device.fidCount == 4 && restored.device.openFileCount == 2)
        #expect(try restored.read(2) == "in one")
        #expect(try restored.read(3) == "in two")
        #expect(try restored.read(["file"], from: 1, fid: 4) == "in two")

        let missing = try Virtio9P(tag: "shares", exports: ["one": try SharedDirectory(path: one.path, readOnly: false)])
        var missingReader = StateReader(saved)
        #expect(throws: StateError.missing(what: "9p export \"two\"")) { try missing.restoreState(from: &missingReader) }
        #expect(missing.fidCount == 0)
        #expect(StateError.missing(what: "9p export \"two\"").description
                == "saved state refers to 9p export \"two\", which this device does not have")

        // Neither kind of share takes the other's state.
        let single = Virtio9P(directory: try SharedDirectory(path: one.path, readOnly: false), tag: "shares")
        var singleReader = StateReader(saved)
        #expect(throws: StateError.invalid(what: "9p export table")) { try single.restoreState(from: &singleReader) }
        var exportsReader = StateReader(savedBytes(single))
        #expect(throws: StateError.invalid(what: "9p export table")) { try missing.restoreState(from: &exportsReader) }
    }

    @Test func bindRefusesNamesOutsideItsAlphabet() throws {
        let device = try Virtio9P(tag: "shares")
        let directory = try SharedDirectory(path: one.path, readOnly: false)
        for bad in ["", "a/b", "a b", "..\0", "naïve", String(repeating: "x", count: 65)] {
            #expect(throws: NinePExportError.badName(bad)) { try device.bind(exports: ["good": directory, bad: directory]) }
        }
        #expect(throws: NinePExportError.badName("a/b")) { try Virtio9P(tag: "shares", exports: ["a/b": directory]) }
        try device.bind(exports: [String(repeating: "x", count: 64): directory, "A.z_0-9": directory, "..": directory])
        #expect(NinePExportError.badName("a b").description
                == "cannot bind the 9p export \"a b\": a name is 1 to 64 bytes of A-Z, a-z, 0-9, '.', '_' and '-'")
    }
}

extension NinePDeviceClient {
    mutating func walk(_ fid: UInt32, from root: UInt32, _ names: String...) {
        let response = try? send(.walk(fid: root, newFid: fid, names: names))
        guard case .walk = response else { Issue.record("walk to \(names) failed: \(String(describing: response))"); return }
    }
}
