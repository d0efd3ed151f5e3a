import Glibc
@testable import OCI
import Testing
import VMM

struct StateStoreTests {
    private func scratch() throws -> String {
        var template = Array("/tmp/microvm-oci-state-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw OCIError.failed("mkdtemp") }
        return String(cString: made) + "/nested/root"
    }

    @Test func recordsRoundTripAndIDsAreUnique() throws {
        let store = try StateStore(root: try scratch())
        defer { _ = system("rm -rf '\(store.root)'") }
        let record = ContainerRecord(id: "c-1.x_y", pid: 42, startTime: 123_456, bundle: "/b", rootfs: "/b/rootfs",
                                     created: "2026-01-01T00:00:00.000000000Z", annotations: [("k", "v")])
        do {
            let directory = try store.create(record.id)
            try directory.write(record)
        }
        #expect(throws: OCIError.alreadyExists(record.id)) { try store.create(record.id) }
        let reopened = try store.open(record.id, exclusive: false)
        #expect(try reopened.read() == record)
        reopened.remove()
        #expect(throws: OCIError.noSuchContainer(record.id)) { try store.open(record.id, exclusive: true) }
    }

    @Test(arguments: ["", ".", "..", "a/b", "a b", String(repeating: "x", count: 1025)])
    func refusesBadIDs(_ id: String) {
        #expect(throws: OCIError.self) { try StateStore.checkID(id) }
    }

    @Test func statusFollowsTheProcess() {
        var record = ContainerRecord(id: "c", pid: 7, startTime: 1, bundle: "/b", rootfs: "/r", created: "t")
        #expect(record.status { _, _ in true } == .created)
        record.started = true
        #expect(record.status { _, _ in true } == .running)
        #expect(record.status { _, _ in false } == .stopped)
    }

    @Test func theOCIStateHasWhatTheSpecRequires() throws {
        let record = ContainerRecord(id: "c", pid: 7, startTime: 1, bundle: "/b", rootfs: "/r", created: "t", started: true,
                                     annotations: [("a", "b")])
        let running = record.ociState(.running)
        #expect(running["ociVersion"] == .string(ContainerRecord.ociVersion))
        #expect(running["id"] == .string("c") && running["status"] == .string("running") && running["pid"] == .number(7))
        #expect(running["bundle"] == .string("/b") && running["annotations"]?["a"] == .string("b"))
        #expect(record.ociState(.stopped)["pid"] == nil)
    }

    @Test func aLiveProcessIsKnownByItsStartTime() throws {
        let own = getpid()
        let start = try #require(ProcessInfo.startTime(of: own))
        #expect(ProcessInfo.isAlive(own, startTime: start))
        #expect(!ProcessInfo.isAlive(own, startTime: start + 1))
        #expect(ProcessInfo.startTime(of: Int32.max) == nil)
    }
}

struct StateFileTests {
    static func state(pid: String = "42", startTime: String = "123456") -> String {
        #"{"id": "c", "pid": \#(pid), "start_time": \#(startTime), "bundle": "/b", "rootfs": "/b/rootfs", "created": "t", "started": false, "annotations": {}}"#
    }

    @Test func aGoodStateIsRead() throws {
        let record = try ContainerRecord(try JSONValue.parse(Array(Self.state().utf8)))
        #expect(record.pid == 42 && record.startTime == 123_456)
    }

    @Test(arguments: [
        (state(pid: "1e300"), "pid 1e+300 is not a process ID"),
        (state(pid: "-1"), "pid -1 is not a process ID"),
        (state(pid: "1.5"), "pid 1.5 is not a process ID"),
        (state(pid: "0"), "pid 0 is not a process ID"),
        (state(pid: "2147483648"), "pid 2147483648 is not a process ID"),
        (state(startTime: "1e300"), "start_time 1e+300 is not a whole number of clock ticks"),
        (state(startTime: "-1"), "start_time -1 is not a whole number of clock ticks"),
        (state(startTime: "0.5"), "start_time 0.5 is not a whole number of clock ticks"),
        (#"{"id": "c"}"#, "a member is missing or of the wrong type"),
    ])
    func damagedStatesAreRefusedInOneLine(text: String, message: String) throws {
        var template = Array("/tmp/microvm-oci-state-XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        defer { _ = system("rm -rf '\(root)'") }
        let store = try StateStore(root: root)
        do {
            let directory = try store.create("c")
            try FileIO.write(directory.paths.state, Array(text.utf8))
        }
        #expect(throws: OCIError.failed("the state of container c is damaged: \(message)")) {
            try store.open("c", exclusive: false).read()
        }
    }

    @Test func aRelativeRootIsTakenFromTheWorkingDirectory() throws {
        let name = "microvm-oci-relative-\(getpid())"
        defer { _ = system("rm -rf '\(name)'") }
        let store = try StateStore(root: name + "/state")
        let directory = try #require(getcwd(nil, 0))
        defer { free(directory) }
        let working = String(cString: directory)
        #expect(store.root == working + "/" + name + "/state")
        var status = stat()
        #expect(stat(working + "/" + name + "/state", &status) == 0 && status.st_mode & S_IFMT == S_IFDIR)
        #expect(try store.paths(of: "c").state == working + "/" + name + "/state/c/state.json")
    }

    @Test func anEmptyRootIsRefused() {
        #expect(throws: OCIError.usage("--root: the state directory's path is empty")) { try StateStore(root: "") }
    }

    @Test(arguments: ["../escape", "a/b", ".."])
    func noPathIsMadeFromABadID(_ id: String) throws {
        var template = Array("/tmp/microvm-oci-state-XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        defer { _ = system("rm -rf '\(root)'") }
        #expect(throws: OCIError.self) { try StateStore(root: root).paths(of: id) }
    }
}
