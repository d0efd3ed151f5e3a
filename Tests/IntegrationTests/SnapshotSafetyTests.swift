import Foundation
import Glibc
import Testing

/// Snapshots of the test guest printing forever (no Linux: its boot takes a minute here),
/// for what a snapshot must never do on the host: open a host file it names itself, let
/// its memory file change under a running guest, hang on a FIFO, replace the VM's own
/// disk, or follow a symbolic link planted where it writes.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct SnapshotSafetyTests {
    /// A scratch directory with a disk (holding `marker`) and a shared directory.
    final class Work {
        let path: String
        static let marker = Array("disk contents before the snapshot".utf8)

        init() throws {
            path = try WorkloadTests.scratch("snapshot-safety").path
            try FileManager.default.createDirectory(atPath: path + "/data", withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: path + "/disk.img", contents: Data(Self.marker + [UInt8](repeating: 0, count: 4096 - Self.marker.count))))
        }

        deinit { try? FileManager.default.removeItem(atPath: path) }

        subscript(name: String) -> String { path + "/" + name }

        var devices: [String] { ["--disk", self["disk.img"], "--share", self["data"] + ":data"] }
    }

    static func ctl(_ arguments: String...) throws -> MicroVMProcess.Result {
        try MicroVMProcess.run(["ctl"] + arguments, timeout: 60)
    }

    static func waitForFile(_ path: String) -> Bool {
        for _ in 0..<500 where access(path, F_OK) != 0 { usleep(20_000) }
        return access(path, F_OK) == 0
    }

    /// Boots the looping test guest with the work's disk and share, runs `body` with its
    /// control socket, then stops it.
    static func withLoopingGuest(_ work: Work, _ body: @escaping (String) throws -> Void) throws {
        let api = work["api"]
        var failure: Error?
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--cmdline", "tg.loop", "--memory", "16M",
                                             "--console-socket", work["console"], "--api-socket", api] + work.devices, timeout: 120) { _, _ in
            guard waitForFile(api) else { return }
            do { try body(api) } catch { failure = error }
            _ = try? ctl(api, "stop")
        }
        if let failure { throw failure }
        #expect(result.status == 0, "\(result.stderr)")
    }

    static func snapshot(_ work: Work) throws -> String {
        let path = work["vm.snap"]
        try withLoopingGuest(work) { api in
            let answer = try ctl(api, "snapshot", path)
            #expect(answer.status == 0, "\(answer.stderr)")
        }
        return path
    }

    /// Starts `microvm restore` of `snapshot` with `arguments`; stderr goes to `work["restore.err"]`.
    static func restore(_ snapshot: String, _ work: Work, _ arguments: [String]) throws -> ChildProcess {
        let errors = open(work["restore.err"], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(errors); close(null) }
        return try ChildProcess(MicroVMProcess.executable.path, ["restore", "--quiet", snapshot] + arguments, stdout: null, stderr: errors)
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    @Test func aRestoreTakesTheDiskAndShareFromItsCommandLineByName() throws {
        let work = try Work()
        let snapshot = try Self.snapshot(work)
        let state = try [UInt8](Data(contentsOf: URL(fileURLWithPath: snapshot)))
        #expect(!String(decoding: state, as: UTF8.self).contains(work.path), "the state file names a host path")

        let none = try MicroVMProcess.run(["restore", snapshot], timeout: 30)
        #expect(none.status == 1)
        #expect(none.stderr == "microvm: error: the restore's devices do not match the snapshot's: the snapshot has 1 disk and the restore gives 0: "
            + "give each with --disk PATH[,ro], in the order they were attached\n")
        let wrongTag = try MicroVMProcess.run(["restore", snapshot, "--disk", work["disk.img"], "--share", work["data"] + ":other"], timeout: 30)
        #expect(wrongTag.status == 1)
        #expect(wrongTag.stderr == "microvm: error: the restore's devices do not match the snapshot's: the snapshot has no share tagged other\n")
        let readOnly = try MicroVMProcess.run(["restore", snapshot, "--disk", work["disk.img"] + ",ro", "--share", work["data"] + ":data"], timeout: 30)
        #expect(readOnly.status == 1 && readOnly.stderr.contains("disk 0 (\(work["disk.img"])) was attached read-write; leave out ,ro"), "\(readOnly.stderr)")

        // Moved: the snapshot follows the command line, not where the files were.
        #expect(rename(work["disk.img"], work["moved.img"]) == 0)
        #expect(rename(work["data"], work["moved"]) == 0)
        let restored = try Self.restore(snapshot, work, ["--console-socket", work["restored.console"], "--api-socket", work["restored.api"],
                                                         "--disk", work["moved.img"], "--share", work["moved"] + ":data"])
        let console = try? ConsoleClient(path: work["restored.console"])
        #expect(console?.wait(for: "microvm-test-guest: loop", count: 2, timeout: 60) == true, "\(Self.lines(work["restore.err"]))")
        #expect(try Self.ctl(work["restored.api"], "stop").status == 0)
        let ending = try #require(restored.wait(timeout: 60))
        #expect(ending.status == 0, "\(Self.lines(work["restore.err"]))")
    }

    /// Truncating or opening the memory file for writing waits on microvm's lease, which
    /// ends the VM first: one line, status 1, and the guest never runs on changed memory.
    @Test(arguments: ["truncate", "write"])
    func changingTheMemoryFileUnderARestoredVMEndsIt(change: String) throws {
        let work = try Work()
        let snapshot = try Self.snapshot(work)
        let restored = try Self.restore(snapshot, work, ["--console-socket", work["restored.console"]] + work.devices)
        let console = try? ConsoleClient(path: work["restored.console"])
        #expect(console?.wait(for: "microvm-test-guest: loop", count: 2, timeout: 60) == true, "\(Self.lines(work["restore.err"]))")
        let memory = snapshot + ".mem"
        // On a thread of its own: the change waits until microvm gives up its lease.
        let changer = Thread {
            if change == "truncate" {
                _ = truncate(memory, 0)
            } else {
                let fd = open(memory, O_WRONLY)
                _ = pwrite(fd, [UInt8](repeating: 0xcc, count: 4096), 4096, 0)
                close(fd)
            }
        }
        changer.start()
        let ending = try #require(restored.wait(timeout: 40), "the restored VM ran on after its memory file changed")
        #expect(ending.status == 1)
        #expect(Self.lines(work["restore.err"]) == ["microvm: another process opened the snapshot's memory file \(memory) to write or truncate it: "
            + "the VM ends before its memory changes"])
    }

    @Test func aFIFOAsTheSnapshotOrItsMemoryFileIsRefusedAtOnce() throws {
        let work = try Work()
        #expect(mkfifo(work["fifo.snap"], 0o600) == 0)
        let state = try MicroVMProcess.run(["restore", work["fifo.snap"]], timeout: 20)
        #expect(state.status == 1)
        #expect(state.stderr == "microvm: error: cannot open \(work["fifo.snap"]): it is a FIFO, not a regular file\n")

        let snapshot = try Self.snapshot(work)
        let copy = work["copy.snap"]
        try FileManager.default.copyItem(atPath: snapshot, toPath: copy)
        #expect(mkfifo(copy + ".mem", 0o600) == 0)
        let memory = try MicroVMProcess.run(["restore", copy] + work.devices, timeout: 20)
        #expect(memory.status == 1)
        #expect(memory.stderr == "microvm: error: cannot restore guest memory from \(copy).mem: it is a FIFO, not a regular file\n")
    }

    @Test func aSnapshotNeverReplacesTheVMsDiskNorFollowsAPlantedLink() throws {
        let work = try Work()
        try "not to be touched".write(toFile: work["victim"], atomically: false, encoding: .utf8)
        #expect(symlink(work["victim"], work["vm.snap.mem.partial"]) == 0)
        try Self.withLoopingGuest(work) { api in
            let ontoDisk = try Self.ctl(api, "snapshot", work["disk.img"])
            #expect(ontoDisk.status == 1)
            #expect(ontoDisk.stderr == "microvm: error: \(work["disk.img"]) is the disk \(work["disk.img"]), which this VM runs from; a snapshot never replaces it\n")
            // PATH.mem is the disk.
            #expect(link(work["disk.img"], work["linked.mem"]) == 0)
            let memoryOntoDisk = try Self.ctl(api, "snapshot", work["linked"])
            #expect(memoryOntoDisk.status == 1)
            #expect(memoryOntoDisk.stderr.contains("\(work["linked.mem"]) is the disk \(work["disk.img"])"), "\(memoryOntoDisk.stderr)")

            let planted = try Self.ctl(api, "snapshot", work["vm.snap"])
            #expect(planted.status == 1)
            #expect(planted.stderr == "microvm: error: \(work["vm.snap.mem.partial"]) exists: another snapshot to this path is under way, "
                + "or one was interrupted; remove it first\n")
            #expect(unlink(work["vm.snap.mem.partial"]) == 0)
            #expect(try Self.ctl(api, "snapshot", work["vm.snap"]).status == 0)
        }
        #expect(try String(contentsOfFile: work["victim"], encoding: .utf8) == "not to be touched")
        let disk = try [UInt8](Data(contentsOf: URL(fileURLWithPath: work["disk.img"])))
        #expect(disk.count == 4096 && Array(disk.prefix(Work.marker.count)) == Work.marker)
        #expect(access(work["vm.snap"], F_OK) == 0 && access(work["vm.snap.mem"], F_OK) == 0)
    }
}
