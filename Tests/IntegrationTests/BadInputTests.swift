import Foundation
import Testing

/// Bad input from the command line: one line on stderr, exit status 1, never a trap.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct BadInputTests {
    static let scratch: URL = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-bad-input-\(getpid())")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }()

    static func file(_ name: String, _ bytes: [UInt8]) -> String {
        let url = scratch.appendingPathComponent(name)
        try? Data(bytes).write(to: url)
        return url.path
    }

    /// A FIFO nobody writes or reads: an open that waits for the other end waits forever.
    static func fifo(_ name: String) -> String {
        let path = scratch.appendingPathComponent(name).path
        unlink(path)
        mkfifo(path, 0o600)
        return path
    }

    static var elf32: [UInt8] {
        var header = [UInt8](repeating: 0, count: 52)
        header.replaceSubrange(0..<7, with: [0x7f, 0x45, 0x4c, 0x46, 1, 1, 1])
        header[16] = 2
        header[18] = 3
        return header
    }

    static var truncatedBzImage: [UInt8] {
        Array((FileManager.default.contents(atPath: GuestImages.testGuestBzImage) ?? Data()).prefix(0x300))
    }

    static let cases: [(arguments: [String], message: String)] = [
        (["--kernel", "/nonexistent/vmlinux"], "cannot read /nonexistent/vmlinux: No such file or directory"),
        (["--kernel", "/tmp"], "cannot read /tmp: it is a directory"),
        (["--kernel", file("empty", [])], "the file is empty"),
        (["--kernel", file("random", (0..<8192).map { _ in UInt8.random(in: 0...255) })], "not a bzImage"),
        (["--kernel", file("elf32", elf32)], "a 32-bit ELF file (machine 3); microvm boots x86_64 kernels"),
        (["--kernel", file("truncated", truncatedBzImage)], "(truncated?)"),
        (["--kernel", GuestImages.testGuestELF, "--initrd", "/nonexistent/initrd"], "cannot read /nonexistent/initrd"),
        (["--kernel", GuestImages.testGuestELF, "--memory", "0"], "memory size '0' is too small"),
        (["--kernel", GuestImages.testGuestELF, "--memory", "1T"], "memory size '1T' is more than this host's"),
        (["--kernel", GuestImages.testGuestELF, "--memory", "many"], "memory size 'many' is not a number"),
        (["--kernel", GuestImages.testGuestELF, "--cmdline", String(repeating: "x", count: 10_000)],
         "bytes is longer than the kernel's limit of 2047"),
        (["--kernel", GuestImages.testGuestELF, "--console-log", "/nonexistent/dir/log"], "cannot open the console log"),
        (["--kernel", GuestImages.testGuestELF, "--disk", "/nonexistent/disk.img"],
         "cannot open the disk /nonexistent/disk.img: No such file or directory"),
        (["--kernel", GuestImages.testGuestELF, "--disk", "/tmp"],
         "cannot open the disk /tmp: it is a directory, not a regular file or a block device"),
        (["--kernel", GuestImages.testGuestELF, "--rootfs", file("not-ext4", [UInt8](repeating: 0x5a, count: 8192))],
         "is not an ext4 image (nor a directory)"),
        (["--kernel", GuestImages.testGuestELF] + Array(repeating: ["--disk", file("disk", [UInt8](repeating: 0, count: 4096))], count: 10).flatMap { $0 },
         "11 virtio devices requested (disks, shares, the network, virtio-rng and the virtio console); microvm has 9 slots"),
        (["--kernel", GuestImages.testGuestELF, "--share", "/nonexistent/share"],
         "cannot open the shared directory /nonexistent/share: No such file or directory"),
        (["--kernel", GuestImages.testGuestELF, "--share", file("share-file", [1])], "share-file is not a directory"),
        (["--kernel", GuestImages.testGuestELF, "--share", "/tmp:same", "--share", "/usr:same"],
         "two shares have the tag 'same'; give one another tag with HOSTDIR:TAG"),
        (["--kernel", GuestImages.testGuestELF, "--share", "/tmp:" + String(repeating: "t", count: 256)],
         "has 256 bytes; a virtio-9p tag has at most 255"),
        (["--kernel", GuestImages.testGuestELF, "--share", "/tmp:a,b"], "the share tag 'a,b' must be letters, digits"),
        (["--kernel", GuestImages.testGuestELF, "--net", "tap=microvm-none0"], "cannot open the tap device microvm-none0: no such device"),
        (["--kernel", GuestImages.testGuestELF, "--net", "slirp"], "--net slirp: expected passt, passt=SOCKET or tap=NAME"),
        (["--kernel", GuestImages.testGuestELF, "--net", "passt=/nonexistent/passt.socket"],
         "passt's socket: cannot connect to /nonexistent/passt.socket: No such file or directory"),
        (["--kernel", GuestImages.testGuestELF, "--net", "passt", "--mac", "02:00:00:00:00"], "expected six hexadecimal bytes"),
        (["--kernel", GuestImages.testGuestELF, "--net", "passt", "--mac", "01:00:00:00:00:01"], "a multicast address"),
        (["--kernel", GuestImages.testGuestELF, "--vsock", "/nonexistent/dir/v.sock"],
         "cannot listen on /nonexistent/dir/v.sock: No such file or directory"),
        (["--kernel", GuestImages.testGuestELF, "--profile", scratch.appendingPathComponent("p").path, "--profile-rate", "0"],
         "--profile-rate 0: give 1 to 10000 samples per second"),
        (["--kernel", GuestImages.testGuestELF, "--symbols", GuestImages.testGuestELF],
         "--symbols names a profile's functions; give --profile FILE too"),
        (["--kernel", GuestImages.testGuestBzImage, "--profile", scratch.appendingPathComponent("p").path],
         "is not an ELF vmlinux, so it has no symbol table; give its System.map with --symbols"),
        (["--kernel", GuestImages.testGuestELF, "--profile", scratch.appendingPathComponent("p").path, "--symbols", file("map", Array("not a map\n".utf8))],
         "line 1 is not \"ADDRESS TYPE NAME\" (neither ELF nor a System.map)"),
        (["--kernel", GuestImages.testGuestELF, "--profile", "/nonexistent/dir/profile"],
         "cannot open the profile /nonexistent/dir/profile: No such file or directory"),
        (["--kernel", GuestImages.testGuestELF, "--console-log", scratch.appendingPathComponent("l").path, "--console-log-size", "1K"],
         "--console-log-size 1K: give at least 4K and at most 1T"),
        (["--kernel", GuestImages.testGuestELF, "--console-log", scratch.appendingPathComponent("l").path, "--console-log-size", "lots"],
         "--console-log-size lots: give at least 4K and at most 1T"),
        (["--kernel", GuestImages.testGuestELF, "--console-log-size", "1M"], "--console-log-size needs --console-log FILE"),
        (["--kernel", fifo("kernel.fifo")], "cannot read \(scratch.path)/kernel.fifo: it is a FIFO, not a regular file"),
        (["--kernel", GuestImages.testGuestELF, "--initrd", fifo("initrd.fifo")],
         "cannot read \(scratch.path)/initrd.fifo: it is a FIFO, not a regular file"),
        (["--kernel", GuestImages.testGuestELF, "--profile", scratch.appendingPathComponent("p").path, "--symbols", fifo("symbols.fifo")],
         "cannot read \(scratch.path)/symbols.fifo: it is a FIFO, not a regular file"),
        (["--kernel", GuestImages.testGuestELF, "--disk", fifo("disk.fifo")],
         "cannot open the disk \(scratch.path)/disk.fifo: it is a FIFO, not a regular file or a block device"),
        (["--kernel", GuestImages.testGuestELF, "--rootfs", fifo("rootfs.fifo")],
         "cannot open the root filesystem \(scratch.path)/rootfs.fifo: it is a FIFO, not a regular file, a block device or a directory"),
        (["--kernel", GuestImages.testGuestELF, "--share", fifo("share.fifo")],
         "the share \(scratch.path)/share.fifo is not a directory"),
        (["--kernel", GuestImages.testGuestELF, "--console-log", fifo("log.fifo")],
         "cannot open the console log \(scratch.path)/log.fifo: it is a FIFO, not a regular file or a character device"),
        (["--kernel", GuestImages.testGuestELF, "--profile", fifo("profile.fifo")],
         "cannot open the profile \(scratch.path)/profile.fifo: it is a FIFO, not a regular file or a character device"),
        (["--kernel", GuestImages.testGuestELF, "--console-log", "/tmp"],
         "cannot open the console log /tmp: it is a directory, not a regular file or a character device"),
    ]

    @Test(arguments: 0..<cases.count)
    func badInputGetsOneClearLine(index: Int) throws {
        let (arguments, message) = Self.cases[index]
        let result = try MicroVMProcess.run(["run"] + arguments, timeout: 20)
        #expect(!result.terminatedBySignal)
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(result.stderr.hasPrefix("microvm: error: "))
        #expect(result.stderr.contains(message), "stderr: \(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    /// A disk file the process may not write, attached without ,ro: as root, permissions do
    /// not stop a write, so the file is made immutable instead.
    @Test func aReadOnlyDiskNeedsRO() throws {
        let path = Self.file("read-only-disk", [UInt8](repeating: 0, count: 4096))
        chmod(path, 0o444)
        let immutable = getuid() == 0
        if immutable { try #require(Self.shell("chattr +i '\(path)'") == 0, "chattr +i failed on \(path)") }
        defer { if immutable { _ = Self.shell("chattr -i '\(path)'") } }
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--disk", path], timeout: 20)
        #expect(result.status == 1)
        #expect(result.stderr == "microvm: error: the disk \(path) is read-only; attach it with ,ro\n")
        let attached = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--disk", path + ",ro"], timeout: 20)
        #expect(attached.status == 0, "stderr: \(attached.stderr)")
    }

    static func shell(_ command: String) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        try? process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Without passt on PATH, --net passt says how to install it.
    @Test func aMissingPasstSaysHowToInstallIt() throws {
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--net", "passt"], timeout: 20,
                                            environment: ["PATH": "/nonexistent"])
        #expect(result.status == 1)
        #expect(result.stderr == "microvm: error: --net passt needs passt, which is not installed (on Debian: apt-get install passt)\n")
    }

    /// A VM that cannot be built leaves no empty profile behind.
    @Test func aFailedBuildLeavesNoProfileFiles() throws {
        let path = Self.scratch.appendingPathComponent("unbuilt-profile").path
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--profile", path,
                                             "--disk", "/nonexistent/disk.img"], timeout: 20)
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot open the disk /nonexistent/disk.img"))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(!FileManager.default.fileExists(atPath: path + ".folded"))
    }

    /// Nothing the run writes is created before the VM is built: a run that cannot start
    /// leaves an existing console log as it was.
    @Test func aRunThatCannotStartLeavesTheConsoleLogAlone() throws {
        let log = Self.file("kept-console-log", Array("the log of an earlier run\n".utf8))
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--console-log", log,
                                             "--disk", "/nonexistent/disk.img"], timeout: 20)
        #expect(result.status == 1)
        #expect(FileManager.default.contents(atPath: log) == Data("the log of an earlier run\n".utf8))
        // Nor one refused after the VM is built: the log is emptied only when the VM runs.
        let profiled = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--console-log", log,
                                               "--profile", GuestImages.testGuestELF], timeout: 20)
        #expect(profiled.status == 1, "\(profiled.stderr)")
        #expect(FileManager.default.contents(atPath: log) == Data("the log of an earlier run\n".utf8))
    }

    /// An output that names an input of the same run is refused, and the input stays whole.
    @Test func aProfileIsNeverWrittenOverTheKernel() throws {
        let kernel = Self.scratch.appendingPathComponent("profiled-kernel.elf").path
        let bytes = try #require(FileManager.default.contents(atPath: GuestImages.testGuestELF))
        try bytes.write(to: URL(fileURLWithPath: kernel))
        let result = try MicroVMProcess.run(["run", "--kernel", kernel, "--profile", kernel], timeout: 20)
        #expect(result.status == 1)
        #expect(result.stderr == "microvm: error: cannot open the profile \(kernel): it is the kernel \(kernel) of this run\n")
        #expect(FileManager.default.contents(atPath: kernel) == bytes)
    }

    @Test func aConsoleLogIsNeverWrittenOverADisk() throws {
        let disk = Self.file("logged-disk.img", (0..<8192).map { _ in UInt8.random(in: 0...255) })
        let bytes = try #require(FileManager.default.contents(atPath: disk))
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--console-log", disk, "--disk", disk], timeout: 20)
        #expect(result.status == 1)
        #expect(result.stderr == "microvm: error: cannot open the console log \(disk): it is the disk \(disk) of this run\n")
        #expect(FileManager.default.contents(atPath: disk) == bytes)
    }

    /// A console log that cannot be written ends the run with one line and status 1.
    @Test func aConsoleLogThatCannotBeWrittenEndsTheRun() throws {
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--console-log", "/dev/full"], timeout: 20)
        #expect(!result.terminatedBySignal)
        #expect(result.status == 1)
        #expect(result.stderr == "microvm: cannot write the console log /dev/full: No space left on device\n")
    }

    @Test func unknownFlagIsAUsageError() throws {
        let result = try MicroVMProcess.run(["run", "--no-such-flag"], timeout: 20)
        #expect(!result.terminatedBySignal)
        #expect(result.status != 0)
        #expect(result.stderr.contains("Unknown option '--no-such-flag'"))
    }
}
