import Foundation
import Testing

/// `run --jail`, seen from outside the VM process while the test guest halts: its own
/// mount namespace whose root shows only its sockets' directory, no_new_privs, the
/// capabilities a share needs (as root) or none, and limits; a snapshot still lands beside
/// the control socket, and nowhere else.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct JailTests {
    final class Seen: @unchecked Sendable {
        var namespace: String?
        var ownNamespace: String?
        var root: [String]?
        var work: [String]?
        var etcVisible = true
        var status = ""
        var limits = ""
        var snapshotBeside = ""
        var snapshotElsewhere = ""
    }

    @Test func aJailedVMSeesOnlyItsSocketsDirectoryAndKeepsNoPrivilegeItDoesNotNeed() throws {
        let work = try WorkloadTests.scratch("jail")
        defer { try? FileManager.default.removeItem(at: work) }
        let sockets = work.appendingPathComponent("sockets").path
        let share = work.appendingPathComponent("share").path
        for directory in [sockets, share] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let api = sockets + "/api.sock"
        let seen = Seen()
        let result = try MicroVMProcess.run(["run", "--jail", "--kernel", GuestImages.testGuestELF, "--cmdline", "tg.halt", "--memory", "64M",
                                             "--share", share + ":s", "--api-socket", api], timeout: 60) { process, output in
            let deadline = Date().addingTimeInterval(20)
            while !output().contains("microvm-test-guest: halting") && Date() < deadline { usleep(10_000) }
            let proc = "/proc/\(process.processIdentifier)"
            let files = FileManager.default
            seen.namespace = try? files.destinationOfSymbolicLink(atPath: proc + "/ns/mnt")
            seen.ownNamespace = try? files.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
            seen.root = try? files.contentsOfDirectory(atPath: proc + "/root")
            seen.work = try? files.contentsOfDirectory(atPath: proc + "/root" + work.path)
            seen.etcVisible = files.fileExists(atPath: proc + "/root/etc")
            seen.status = (try? String(contentsOfFile: proc + "/status", encoding: .utf8)) ?? ""
            seen.limits = (try? String(contentsOfFile: proc + "/limits", encoding: .utf8)) ?? ""
            seen.snapshotBeside = (try? SnapshotTests.ctl(api, "snapshot", sockets + "/saved"))?.stdout ?? ""
            seen.snapshotElsewhere = (try? SnapshotTests.ctl(api, "snapshot", work.path + "/saved"))?.stdout ?? ""
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(result.status == 128 + SIGTERM, "stderr: \(result.stderr)")
        #expect(result.lines.contains("microvm-test-guest: halting"))

        #expect(seen.namespace != nil && seen.namespace != seen.ownNamespace, "\(String(describing: seen.namespace))")
        #expect(seen.root == [work.path.split(separator: "/").first.map(String.init) ?? ""], "\(String(describing: seen.root))")
        #expect(seen.work == ["sockets"], "the share and the rest of the scratch directory are hidden: \(String(describing: seen.work))")
        #expect(!seen.etcVisible)

        let fields = Dictionary(seen.status.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":", maxSplits: 1)
            return parts.count == 2 ? (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces)) : nil
        }, uniquingKeysWith: { first, _ in first })
        // As root with a share: CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID (bits 0, 1, 3, 4).
        let kept = getuid() == 0 ? "000000000000001b" : "0000000000000000"
        #expect(fields["NoNewPrivs"] == "1")
        #expect(fields["CapEff"] == kept && fields["CapPrm"] == kept && fields["CapBnd"] == kept, "\(seen.status)")
        #expect(fields["CapInh"] == "0000000000000000" && fields["CapAmb"] == "0000000000000000")
        #expect(seen.limits.split(separator: "\n").contains { $0.hasPrefix("Max core file size") && $0.split(separator: " ").contains("0") })

        #expect(seen.snapshotBeside.contains("\"ok\":true"), "\(seen.snapshotBeside)")
        #expect(FileManager.default.fileExists(atPath: sockets + "/saved.mem"))
        #expect(seen.snapshotElsewhere.contains("\"ok\":false"), "\(seen.snapshotElsewhere)")
        #expect(!FileManager.default.fileExists(atPath: work.path + "/saved.mem.partial"))
    }

    /// A socket in / would make the jail show the whole file system: refused in one line.
    @Test(.enabled(if: getuid() == 0, "only root can put a socket in /"))
    func aSocketInTheRootDirectoryIsRefused() throws {
        let path = "/microvm-jail-\(UUID().uuidString.prefix(8)).sock"
        let result = try MicroVMProcess.run(["run", "--jail", "--kernel", GuestImages.testGuestELF, "--api-socket", path])
        #expect(result.status == 1)
        #expect(result.stderr == "microvm: error: cannot enter the jail: a socket of the VM's is in /, which the jail would have to show whole; put the VM's sockets in a directory of their own\n")
        #expect(!result.lines.contains("microvm-test-guest: hello"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
