import Foundation
import Testing

@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux))
struct VirtioConsoleBootTests {
    /// One boot: the shell's console is hvc0, and 1 MiB written to it arrives intact. The
    /// payload is the first MiB of busybox (every byte value, without minutes of the guest
    /// kernel's emulated RNG).
    @Test func linuxConsoleOnHvc0CarriesOneMebibyteIntact() throws {
        let script = "head -n 1 /proc/consoles; head -c 1048576 /bin/busybox > /tmp/d; md5sum /tmp/d; "
            + "stty -opost; printf @@BEGIN@@; cat /tmp/d; printf @@END@@; stty opost"
        let commandLine = "earlycon=uart8250,io,0x3f8 console=hvc0 reboot=k panic=-1 quiet -- sh -c '\(script)'"
        let result = try MicroVMProcess.run(["run", "--console", "virtio", "--kernel", GuestImages.linuxBzImage,
                                             "--initrd", GuestImages.initrd, "--cmdline", commandLine], timeout: 600)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.lines.contains { $0.hasPrefix("hvc0 ") }, "the console should be hvc0: \(result.stdout.prefix(3000))")
        let bytes = Array(result.stdout.utf8)
        let data = Data(result.rawStdout)
        let begin = try #require(data.lastRange(of: Data("@@BEGIN@@".utf8)))
        let end = try #require(data.lastRange(of: Data("@@END@@".utf8)))
        let payload = data[begin.upperBound..<end.lowerBound]
        #expect(payload.count == 1 << 20)
        let guestSum = result.lines.first { $0.hasSuffix("  /tmp/d") }?.prefix(32)
        #expect(guestSum.map(String.init) == MD5.hex(Array(payload)), "\(bytes.count) bytes of output")
    }

    /// Attach, type, detach, re-attach and see the earlier answer replayed; the guest lives on between.
    @Test func attachTypeDetachAndReattach() throws {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-\(UUID().uuidString.prefix(8)).sock").path
        let vm = Process()
        vm.executableURL = MicroVMProcess.executable
        vm.arguments = ["run", "--quiet", "--console", "virtio", "--console-socket", socket,
                        "--kernel", GuestImages.linuxBzImage, "--initrd", GuestImages.initrd]
        vm.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        vm.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try vm.run()
        defer { if vm.isRunning { kill(vm.processIdentifier, SIGKILL) } }
        // The socket comes with the VM, restored from a template that the machine's first run makes.
        let deadline = Date().addingTimeInterval(600)
        while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(20_000) }
        let attributes = try FileManager.default.attributesOfItem(atPath: socket)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        func attach() throws -> (Process, PseudoTerminal) {
            let terminal = try PseudoTerminal()
            let slave = FileHandle(forUpdatingAtPath: terminal.slavePath)!
            let client = Process()
            client.executableURL = MicroVMProcess.executable
            client.arguments = ["attach", socket]
            client.standardInput = slave
            client.standardOutput = slave
            client.standardError = slave
            try client.run()
            return (client, terminal)
        }
        func detach(_ client: Process, _ terminal: PseudoTerminal) {
            terminal.type(bytes: [0x01, UInt8(ascii: "x")])
            let deadline = Date().addingTimeInterval(10)
            while client.isRunning && Date() < deadline { usleep(20_000) }
            #expect(!client.isRunning)
            #expect(client.terminationStatus == 0)
        }

        var (client, terminal) = try attach()
        var transcript = ""
        #expect(terminal.wait(for: "# ", in: &transcript, timeout: 300), "transcript: \(transcript.suffix(2000))")

        // A second client is refused while the first is attached.
        let (second, secondTerminal) = try attach()
        var refusal = ""
        #expect(secondTerminal.wait(for: "another client is attached", in: &refusal, timeout: 10))
        second.waitUntilExit()

        let mark = transcript.endIndex
        terminal.type("echo $((6 * 7))-attached\r")
        #expect(terminal.wait(for: "42-attached", in: &transcript, after: mark, timeout: 240), "transcript: \(transcript.suffix(2000))")
        detach(client, terminal)
        #expect(vm.isRunning, "detaching must not stop the guest")

        (client, terminal) = try attach()
        var replay = ""
        #expect(terminal.wait(for: "42-attached", in: &replay, timeout: 10), "the recent output should be replayed: \(replay.suffix(2000))")
        terminal.type("reboot -f\r")
        vm.waitUntilExit()
        #expect(vm.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket file should be removed")
        client.waitUntilExit()
    }
}

/// MD5, for comparing with the guest's md5sum without a crypto dependency.
enum MD5 {
    static func hex(_ message: [UInt8]) -> String {
        var s: [UInt32] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21]
        s = (0..<64).map { s[($0 / 16) * 4 + $0 % 4] }
        let k = (0..<64).map { UInt32(truncatingIfNeeded: Int64(abs(sin(Double($0 + 1))) * 4_294_967_296)) }
        var a0: UInt32 = 0x6745_2301, b0: UInt32 = 0xefcd_ab89, c0: UInt32 = 0x98ba_dcfe, d0: UInt32 = 0x1032_5476
        var data = message + [0x80]
        while data.count % 64 != 56 { data.append(0) }
        data += withUnsafeBytes(of: (UInt64(message.count) * 8).littleEndian) { Array($0) }
        for chunk in stride(from: 0, to: data.count, by: 64) {
            let m = (0..<16).map { i in data[chunk + i * 4..<chunk + i * 4 + 4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
            var a = a0, b = b0, c = c0, d = d0
            for i in 0..<64 {
                var f: UInt32
                let g: Int
                switch i {
                case 0..<16: f = (b & c) | (~b & d); g = i
                case 16..<32: f = (d & b) | (~d & c); g = (5 * i + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * i + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * i) % 16
                }
                f = f &+ a &+ k[i] &+ m[g]
                a = d; d = c; c = b
                b = b &+ (f << s[i] | f >> (32 - s[i]))
            }
            a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
        }
        return [a0, b0, c0, d0].flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }
            .map { String(format: "%02x", $0) }.joined()
    }
}
