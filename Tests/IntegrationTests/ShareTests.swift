import Foundation
import Testing

/// Host directories shared over virtio-9p with the minimal Linux, in one boot: a
/// directory as the root with no image built, a read-write share the guest changes and
/// the host sees at once, a read-only one, symlinks that point out of the share, and a
/// 64 MiB file read from the host and written back (1 MiB at a time: each request costs
/// the emulated guest kernel tens of milliseconds here, whatever its size).
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveRootfs, GuestImages.missingRootfs))
struct ShareTests {
    @Test func sharedDirectoriesWorkAndStayConfined() throws {
        let work = try WorkloadTests.scratch("share")
        defer { try? FileManager.default.removeItem(at: work) }
        let root = work.appendingPathComponent("root").path
        let share = work.appendingPathComponent("share").path
        let readOnly = work.appendingPathComponent("ro").path
        let outside = work.appendingPathComponent("outside").path
        #expect(try WorkloadTests.shell("""
            cp -a '\(GuestImages.rootfsTree)' '\(root)' && mkdir -p '\(share)/dir' '\(readOnly)' '\(outside)' &&
            echo host-secret > '\(outside)/secret' && echo listed > '\(share)/listed.txt' && echo gone > '\(share)/gone.txt' &&
            echo kept > '\(readOnly)/kept.txt' && ln -s '\(outside)' '\(share)/absolute' && ln -s ../outside '\(share)/relative' &&
            ln -s ../../../../../../ '\(share)/up' && head -c 64M /dev/urandom > '\(share)/big'
            """).status == 0)
        let script = """
            cat /etc/os-release | grep PRETTY; echo from-the-root > /root-file.txt
            ls -1 /mnt/src
            echo ok > /mnt/src/out.txt
            echo data > /mnt/src/a && mv /mnt/src/a /mnt/src/renamed && chmod 640 /mnt/src/renamed && rm /mnt/src/gone.txt
            mkdir /mnt/src/made && ln -s target /mnt/src/made/link
            cd /mnt/src/.. && echo "parent: $(pwd) $(ls | tr '\\n' ' ')"
            cd /mnt/src/dir/../../.. && echo "top: $(pwd)"
            cat /mnt/src/absolute/secret /mnt/src/relative/secret /mnt/src/up/secret 2>&1 | grep -c host-secret | sed 's/^/secrets read: /'
            echo "ro: $(cat /mnt/ro/kept.txt)"; echo changed > /mnt/ro/kept.txt; touch /mnt/ro/new
            echo x > /mnt/src/setuid && chmod 4755 /mnt/src/setuid && echo "setuid: $(stat -c %a /mnt/src/setuid)"
            dd if=/mnt/src/big of=/mnt/src/big.copy bs=1M && echo copied
            exit 3
            """
        let started = Date()
        let result = try MicroVMProcess.run(["run", "--rootfs", root, "--rootfs-mode", "9p", "--share", share + ":src", "--share", readOnly + ":ro,ro",
                                             "--", "sh", "-c", script], timeout: 900)
        print("9p: boot, and 64 MiB copied through a share in \(Int(Date().timeIntervalSince(started))) s")
        let output = result.stdout
        #expect(result.status == 3, "stderr: \(result.stderr)\n\(output.suffix(3000))")
        #expect(!result.stderr.contains("building"), "a directory root needs no image: \(result.stderr)")
        #expect(output.contains("PRETTY_NAME=\"microvm sample root file system (busybox)\""))
        #expect(try String(contentsOfFile: root + "/root-file.txt", encoding: .utf8) == "from-the-root\n")

        #expect(result.lines.contains("listed.txt"))
        #expect(try String(contentsOfFile: share + "/out.txt", encoding: .utf8) == "ok\n")
        #expect(try String(contentsOfFile: share + "/renamed", encoding: .utf8) == "data\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: share + "/renamed")
        #expect((attributes[.posixPermissions] as? Int) == 0o640)
        #expect(!FileManager.default.fileExists(atPath: share + "/gone.txt"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: share + "/made/link") == "target")

        // `..` past the share's root is the guest's /mnt; links are resolved by the guest.
        #expect(result.lines.contains { $0.hasPrefix("parent: /mnt ") && $0.contains("ro") && $0.contains("src") }, "\(output.suffix(3000))")
        #expect(result.lines.contains("top: /"))
        #expect(result.lines.contains("secrets read: 0"), "\(output.suffix(3000))")

        // Set-id bits stay off the host's files.
        #expect(result.lines.contains("setuid: 755"), "\(output.suffix(3000))")
        #expect(((try FileManager.default.attributesOfItem(atPath: share + "/setuid"))[.posixPermissions] as? Int) == 0o755)

        #expect(result.lines.contains("ro: kept"))
        #expect(output.contains("Read-only file system"))
        #expect(try String(contentsOfFile: readOnly + "/kept.txt", encoding: .utf8) == "kept\n")
        #expect(!FileManager.default.fileExists(atPath: readOnly + "/new"))

        // The guest read what the host wrote and wrote it back: the copy is exact.
        let sums = try WorkloadTests.shell("md5sum < '\(share)/big'; md5sum < '\(share)/big.copy'").output.split(separator: "\n")
        #expect(result.lines.contains("copied"))
        #expect(sums.count == 2 && sums[0] == sums[1], "md5: \(sums)")
    }
}
