import Foundation
import Testing

/// Real workloads on the minimal Linux: a root file system from a directory or an image,
/// disks, and the guest command's exit status as microvm's. Each test is one boot.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveRootfs, GuestImages.missingRootfs))
struct WorkloadTests {
    static func scratch(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func shell(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// A directory as the root: the guest reads a file the host put there and writes one
    /// the host then finds in the image; its command's status 7 is microvm's.
    @Test func aDirectoryBecomesTheRootAndTheCommandsStatusComesBack() throws {
        let work = try Self.scratch("rootfs-dir")
        defer { try? FileManager.default.removeItem(at: work) }
        let tree = work.appendingPathComponent("tree").path
        #expect(try Self.shell("cp -a '\(GuestImages.rootfsTree)' '\(tree)'").status == 0)
        try "from the host\n".write(toFile: tree + "/host-file.txt", atomically: true, encoding: .utf8)
        let result = try MicroVMProcess.run(["run", "--rootfs", tree, "--rootfs-mode", "ext4", "--",
                                             "sh", "-c", "cat /etc/os-release /host-file.txt; pwd; echo \"$HOME\"; echo written by the guest > /guest-file.txt; exit 7"],
                                            timeout: 480)
        let image = try #require(result.stderr.split(separator: "\n").lazy.compactMap { line -> String? in
            guard let range = line.range(of: " in /") else { return nil }
            return String(line[line.index(before: range.upperBound)...]).trimmingCharacters(in: .whitespaces)
        }.first { $0.hasSuffix(".ext4") }, "stderr: \(result.stderr)")
        defer { unlink(image) }
        #expect(result.status == 7, "stderr: \(result.stderr)\n\(result.stdout.suffix(2000))")
        #expect(result.stdout.contains("PRETTY_NAME=\"microvm sample root file system (busybox)\""))
        #expect(result.lines.contains("from the host"))
        #expect(result.lines.contains("/") && result.lines.contains("/root"), "working directory / and HOME=/root")
        let written = try Self.shell("/sbin/debugfs -R 'cat /guest-file.txt' '\(image)' 2>/dev/null")
        #expect(written.output == "written by the guest\n", "debugfs on \(image): \(written.output)")

        // The unchanged tree reuses its image (checked without booting: the kernel is missing).
        let again = try MicroVMProcess.run(["run", "--rootfs", tree, "--rootfs-mode", "ext4", "--kernel", "/nonexistent/kernel"], timeout: 60)
        #expect(!again.stderr.contains("building"), "stderr: \(again.stderr)")
        #expect(again.stderr.contains("cannot read /nonexistent/kernel"))
    }

    /// An image as a read-only root, and 64 MiB copied from one disk to another in the
    /// guest, compared on the host.
    @Test func diskToDiskCopyInTheGuestIsExact() throws {
        let work = try Self.scratch("disks")
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("source.img").path
        let target = work.appendingPathComponent("target.img").path
        #expect(try Self.shell("head -c 64M /dev/urandom > '\(source)' && truncate -s 64M '\(target)'").status == 0)
        let started = Date()
        let result = try MicroVMProcess.run(["run", "--rootfs", GuestImages.rootfsImage + ",ro", "--disk", source + ",ro", "--disk", target,
                                             "--", "sh", "-c",
                                             "dd if=/dev/vdb of=/dev/vdc bs=1M iflag=direct oflag=direct && touch /ro-test; echo status $?"],
                                            timeout: 600)
        print("disk copy: 64 MiB from vdb to vdc in the guest, \(Int(Date().timeIntervalSince(started))) s with the boot")
        #expect(result.status == 0, "stderr: \(result.stderr)\n\(result.stdout.suffix(2000))")
        #expect(result.stdout.contains("Read-only file system"), "the root is mounted read-only")
        let sums = try Self.shell("md5sum < '\(source)'; md5sum < '\(target)'").output.split(separator: "\n")
        #expect(sums.count == 2 && sums[0] == sums[1], "md5: \(sums)")
    }
}
