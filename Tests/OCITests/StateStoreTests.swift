import Glibc
@testable import OCI
import Testing

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
