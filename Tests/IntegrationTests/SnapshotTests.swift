import Foundation
import Glibc
import Testing

/// A client of a VM's console socket: types lines and waits for what the guest prints.
final class ConsoleClient {
    let fd: Int32
    private(set) var transcript = ""

    init(path: String, timeout: TimeInterval = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if connected == 0 {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                self.fd = fd
                return
            }
            close(fd)
            guard Date() < deadline else { throw POSIXError(.ECONNREFUSED) }
            usleep(50_000)
        }
    }

    deinit { close(fd) }

    func type(_ line: String) {
        _ = (line + "\n").withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `marker` has appeared `count` times in everything read so far.
    func wait(for marker: String, count: Int = 1, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            if transcript.components(separatedBy: marker).count - 1 >= count { return true }
            let read = recv(fd, &buffer, buffer.count, 0)
            if read > 0 {
                transcript += String(decoding: buffer[0..<read], as: UTF8.self)
            } else {
                usleep(20_000)
            }
        }
        return false
    }
}

/// Snapshots of the minimal Linux with two vCPUs, a disk and a share, in one boot (which
/// also checks that Linux brings up both vCPUs): the control socket's ops, a snapshot,
/// two VMs restored from it at once that find the guest's tmpfs as it was and answer
/// commands, and snapshots that must be refused.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux))
struct SnapshotTests {
    static func ctl(_ arguments: String...) throws -> MicroVMProcess.Result {
        try MicroVMProcess.run(["ctl"] + arguments, timeout: 120)
    }

    /// Sends raw bytes on a control socket and returns the answer line.
    static func rawRequest(_ path: String, _ line: String) throws -> String {
        let client = try ConsoleClient(path: path)
        client.type(line)
        _ = client.wait(for: "\n", timeout: 30)
        return client.transcript.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aSnapshotOfABootedLinuxRestoresTwiceAtOnce() throws {
        let work = try WorkloadTests.scratch("snapshot")
        defer { try? FileManager.default.removeItem(at: work) }
        // The booted VM and the first restore run jailed: the jail shows the sockets' directory,
        // where the snapshot goes, and not the disk's or the share's.
        let path = { (name: String) in work.appendingPathComponent("sockets/" + name).path }
        let host = { (name: String) in work.appendingPathComponent("host/" + name).path }
        try FileManager.default.createDirectory(atPath: path(""), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: host("data"), withIntermediateDirectories: true)
        try "from the host\n".write(toFile: host("data") + "/hello.txt", atomically: true, encoding: .utf8)
        #expect(FileManager.default.createFile(atPath: host("disk.img"), contents: Data(count: 1 << 20)))
        let snapshot = path("vm.snap")

        var answers: [String: String] = [:]
        // --no-acpi: with ACPI, one of the two restored guests twice stopped printing at the
        // same byte of its answer (an open defect, see docs/snapshots.md); the MP-table
        // machine this test was written for keeps its snapshot checks strict meanwhile.
        // Booted (--no-template): the check that both vCPUs came up reads the boot's messages.
        let booted = try MicroVMProcess.run(["run", "--no-template", "--jail", "--no-acpi", "--cpus", "2", "--console-socket", path("console"), "--api-socket", path("api"),
                                             "--disk", host("disk.img"), "--share", host("data") + ":data"], timeout: 900) { _, _ in
            guard let console = try? ConsoleClient(path: path("console")) else { return }
            guard console.wait(for: "/ # ", timeout: 600) else {
                answers["boot"] = console.transcript
                _ = try? Self.ctl(path("api"), "stop")
                return
            }
            answers["smp"] = console.transcript.contains("smp: Brought up 1 node, 2 CPUs") ? "yes" : console.transcript
            console.type("echo snap-$((6*7)) > /tmp/marker; echo ready-$((1+1))")
            _ = console.wait(for: "ready-2", timeout: 120)
            answers["status"] = (try? Self.ctl(path("api"), "status"))?.stdout
            answers["pause"] = (try? Self.ctl(path("api"), "pause"))?.stdout
            answers["paused"] = (try? Self.ctl(path("api"), "status"))?.stdout
            answers["garbage"] = try? Self.rawRequest(path("api"), "{not json")
            answers["snapshot"] = (try? Self.ctl(path("api"), "snapshot", snapshot))?.stdout
            answers["resume"] = (try? Self.ctl(path("api"), "resume"))?.stdout
            console.type("echo still-$((2+3))")
            answers["alive"] = console.wait(for: "still-5", timeout: 120) ? "yes" : console.transcript
            answers["stop"] = (try? Self.ctl(path("api"), "stop"))?.stdout
        }
        #expect(answers["boot"] == nil, "the guest's shell did not come up: \(answers["boot"] ?? "")")
        #expect(booted.status == 0, "\(booted.stderr)")
        #expect(answers["smp"] == "yes", "the guest did not bring up both vCPUs: \(answers["smp"] ?? "")")
        #expect(answers["status"]?.contains(#""state":"running","vcpus":2"#) == true, "\(answers)")
        #expect(answers["pause"]?.contains(#""state":"paused""#) == true, "\(answers)")
        #expect(answers["paused"]?.contains(#""state":"paused""#) == true, "\(answers)")
        #expect(answers["garbage"]?.hasPrefix(#"{"ok":false,"error":""#) == true, "\(answers)")
        #expect(answers["snapshot"]?.contains(#""ok":true"#) == true, "\(answers)")
        #expect(answers["alive"] == "yes", "the VM did not go on after its snapshot: \(answers["alive"] ?? "")")
        #expect(answers["stop"]?.contains(#""state":"stopping""#) == true, "\(answers)")

        // The memory file has holes where the guest never wrote.
        var status = stat()
        #expect(stat(snapshot + ".mem", &status) == 0 && status.st_size == 256 << 20)
        #expect(Int(status.st_blocks) * 512 < 128 << 20, "the memory file is not sparse: \(status.st_blocks) blocks")

        // Two VMs from the one snapshot, at once.
        let restored = try (1...2).map { index in
            let process = Process()
            process.executableURL = MicroVMProcess.executable
            process.arguments = ["restore", snapshot, "--console-socket", path("console\(index)"), "--api-socket", path("api\(index)"),
                                 "--disk", host("disk.img"), "--share", host("data") + ":data"]
                + (index == 1 ? ["--jail"] : [])
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
            process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            return (process, errors)
        }
        defer { for (process, _) in restored where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        guard let consoles = try? (1...2).map({ try ConsoleClient(path: path("console\($0)")) }) else {
            for (process, errors) in restored {
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                Issue.record("restore did not serve its console: \(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            }
            return
        }
        for console in consoles {
            console.type("cat /tmp/marker /mnt/data/hello.txt; echo cpus-$(grep -c ^processor /proc/cpuinfo) disk-$(cat /sys/block/vda/size)")
        }
        for console in consoles {
            #expect(console.wait(for: "disk-2048", timeout: 480), "\(console.transcript)")
            #expect(console.transcript.contains("snap-42"))
            #expect(console.transcript.contains("from the host"))
            #expect(console.transcript.contains("cpus-2 disk-2048"))
        }
        for index in 1...2 {
            #expect(try Self.ctl(path("api\(index)"), "stop").status == 0)
        }
        for (process, errors) in restored {
            let deadline = Date().addingTimeInterval(60)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            #expect(!process.isRunning)
            if !process.isRunning {
                #expect(process.terminationStatus == 0, "\(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            }
        }

        try refusals(snapshot: snapshot, disk: host("disk.img"), share: host("data"), work: work.appendingPathComponent("sockets"))
    }

    /// Each damaged snapshot, and a changed disk, ends `microvm restore` with one line and status 1.
    func refusals(snapshot: String, disk: String, share: String, work: URL) throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: snapshot)))
        func withChecksum(_ body: [UInt8]) -> [UInt8] {
            body + withUnsafeBytes(of: crc32(body).littleEndian) { Array($0) }
        }
        var version = Array(original.dropLast(4))
        version[16] = 9
        var otherHost = Array(original.dropLast(4))
        var offset = 24
        while offset + 12 <= otherHost.count {
            let tag = String(decoding: otherHost[offset..<(offset + 4)], as: UTF8.self)
            let length = otherHost[(offset + 4)..<(offset + 12)].reversed().reduce(0) { $0 << 8 | Int($1) }
            if tag == "HOST" { otherHost[offset + 12] ^= 0xff }
            offset += 12 + length
        }
        var flipped = original
        flipped[original.count / 2] ^= 0x01
        let cases: [(String, [UInt8], String)] = [
            ("truncated", Array(original.prefix(original.count - 100)), "checksum"),
            ("flipped", flipped, "checksum does not match"),
            ("version", withChecksum(version), "format version 9; this microvm reads version 5"),
            ("host", withChecksum(otherHost), "CPU (CPUID) differs"),
        ]
        for (name, bytes, expected) in cases {
            let file = work.appendingPathComponent("\(name).snap").path
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            try FileManager.default.copyItem(atPath: snapshot + ".mem", toPath: file + ".mem")
            let result = try MicroVMProcess.run(["restore", file, "--disk", disk, "--share", share + ":data"], timeout: 60)
            #expect(result.status == 1, "\(name): \(result.stderr)")
            #expect(result.stderr.hasPrefix("microvm: error: ") && result.stderr.contains(expected), "\(name): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(name): \(result.stderr)")
        }
        let missing = try MicroVMProcess.run(["restore", work.appendingPathComponent("absent.snap").path], timeout: 60)
        #expect(missing.status == 1 && missing.stderr.contains("No such file"), "\(missing.stderr)")
        // A disk written since the snapshot holds blocks the guest's page cache does not know.
        let handle = try #require(FileHandle(forWritingAtPath: disk))
        try handle.write(contentsOf: Data([1]))
        try handle.close()
        let changed = try MicroVMProcess.run(["restore", snapshot, "--disk", disk, "--share", share + ":data"], timeout: 60)
        #expect(changed.status == 1 && changed.stderr.contains("is not the file the snapshot was taken with"), "\(changed.stderr)")
    }
}
