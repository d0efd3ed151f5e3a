import Foundation
import Runtime
import Testing

/// The guest's network through passt, vsock streams both ways, and its entropy through
/// virtio-rng, in one boot that also carries the command's arguments and signal status (a
/// Linux boot is the expensive part here). Payloads are 16 MiB (HTTP, each vsock
/// direction) and 1 MiB (entropy) on hardware virtualization, and smaller under kvm_pvm's
/// emulator, where every guest kernel instruction costs ~1 µs.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux),
       .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/passt"), "passt is not installed (scripts/setup installs it)"))
struct NetworkTests {
    static let downloadSize = GuestImages.hardwareVirtualization ? 16 << 20 : 1 << 20
    static let entropySize = GuestImages.hardwareVirtualization ? 1 << 20 : 16 << 10
    static let vsockSize = GuestImages.hardwareVirtualization ? 16 << 20 : 1 << 20

    /// A host program connects over vsock to an echo server in the guest (CONNECT 6000)
    /// and gets back what it sent; the guest connects to the host's port 5000 (the Unix
    /// socket PATH_5000, an echo server this test runs) and checks what comes back. The
    /// guest gets a DHCP lease from passt, fetches a file over HTTP from a server this
    /// test started on the host's loopback (passt maps the gateway's address to it), and
    /// its checksum matches; it reads from /dev/hwrng; the arguments after `--` arrive
    /// intact; and the command killed by SIGKILL gives 137, as a shell reports it. All of it
    /// jailed (`--jail`, in a mount namespace of its own), with a share the guest writes and
    /// chmods, which the jail does not show.
    @Test func networkVsockAndEntropyReachTheGuestAndItsArgumentsAndStatusComeBack() throws {
        var generator = SplitMix(seed: UInt64.random(in: 1...UInt64.max))
        var payload = Data(count: Self.downloadSize)
        payload.withUnsafeMutableBytes { raw in
            for index in stride(from: 0, to: raw.count, by: 8) {
                withUnsafeBytes(of: generator.next()) { raw.baseAddress!.advanced(by: index).copyMemory(from: $0.baseAddress!, byteCount: 8) }
            }
        }
        let expected = md5(payload)
        try #require(expected.count == 32)
        let server = try LoopbackServer.http(serving: payload)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vsock-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let vsockPath = directory.appendingPathComponent("v.sock").path
        let share = try WorkloadTests.scratch("jailed-share")
        defer { try? FileManager.default.removeItem(at: share) }
        let echo = try UnixEcho(path: vsockPath + "_5000")
        let script = """
            echo jailed > /mnt/s/out; chmod 640 /mnt/s/out; \
            vsock-echo serve 6000; vsock-echo send 5000 \(Self.vsockSize); \
            gateway=$(ip route | sed -n 's/^default via \\([0-9.]*\\).*/\\1/p'); echo "gateway=$gateway"; \
            wget -qO- "http://$gateway:\(server.port)/payload" | md5sum | sed 's/ .*/ fetched/'; \
            head -c \(Self.entropySize) /dev/hwrng | wc -c | sed 's/$/ entropy/'; \
            printf '[%s]' "$@"; echo; kill -9 $$
            """
        let hostSide = HostSide()
        let result = try MicroVMProcess.run(["run", "--jail", "--net", "passt", "--vsock", vsockPath, "--share", share.path + ":s",
                                             "--", "sh", "-c", script,
                                             "sh", "a  b", "\"quoted\" 'too'", "$HOME", "", "x,y=z"], timeout: 900) { process, output in
            let deadline = Date().addingTimeInterval(600)
            while !output().contains("vsock-echo: serving 6000") && Date() < deadline { usleep(100_000) }
            hostSide.namespaces = ["/proc/\(process.processIdentifier)/ns/mnt", "/proc/self/ns/mnt"].map {
                (try? FileManager.default.destinationOfSymbolicLink(atPath: $0)) ?? ""
            }
            hostSide.result = Self.echoThroughGuest(path: vsockPath, port: 6000, size: Self.vsockSize)
        }
        #expect(hostSide.result == "OK", "host to guest: \(hostSide.result)")
        #expect(result.lines.contains("vsock-echo: echoed \(Self.vsockSize) bytes"), "\(result.stdout.suffix(2000))")
        #expect(result.lines.contains("vsock-echo: \(Self.vsockSize) bytes intact"), "\(result.stdout.suffix(2000))")
        #expect(echo.echoed == Self.vsockSize)
        #expect(result.lines.contains { $0.hasPrefix("gateway=") && $0.count > 9 }, "no lease: \(result.stdout.suffix(2000))")
        #expect(result.lines.contains("\(expected) fetched"), "\(result.stdout.suffix(2000))")
        #expect(result.lines.contains("\(Self.entropySize) entropy"), "\(result.stdout.suffix(2000))")
        #expect(result.lines.contains("[a  b][\"quoted\" 'too'][$HOME][][x,y=z]"), "\(result.stdout.suffix(1000))")
        #expect(result.status == 137, "stderr: \(result.stderr)\n\(result.stdout.suffix(2000))")
        #expect(hostSide.namespaces.count == 2 && !hostSide.namespaces[0].isEmpty && hostSide.namespaces[0] != hostSide.namespaces[1],
                "\(hostSide.namespaces)")
        #expect(try String(contentsOfFile: share.path + "/out", encoding: .utf8) == "jailed\n")
        #expect((try FileManager.default.attributesOfItem(atPath: share.path + "/out")[.posixPermissions] as? Int) == 0o640)
    }

    /// The guest sends broadcast frames as fast as its kernel takes them to a "passt"
    /// that reads nothing until the VM is gone: microvm takes what the socket holds and
    /// leaves the rest in the guest's transmit ring, the guest's command ends and microvm
    /// with it, and the peer then finds whole frames (but perhaps the last), in order.
    @Test func aTransmitFloodAgainstAPeerThatNeverReadsLeavesMicrovmServing() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flood-\(UUID().uuidString.prefix(8)).sock").path
        let peer = try UnixSink(path: path, stalled: true)
        let frames = 3000
        let result = try MicroVMProcess.run(["run", "--no-rng", "--net", "passt=" + path,
                                             "--cmdline", VMConfiguration.defaultCommandLine() + " microvm.net=manual", "--",
                                             "sh", "-c", "ip link set eth0 up && vsock-echo flood eth0 \(frames) && echo flood over"],
                                            timeout: 600)
        let stream = peer.collect()
        #expect(result.status == 0, "stderr: \(result.stderr)\n\(result.stdout.suffix(2000))")
        #expect(result.lines.contains("flood over"), "\(result.stdout.suffix(2000))")
        let taken = result.lines.first { $0.hasPrefix("vsock-echo: flood: ") } ?? "no count"
        var offset = 0
        var whole = 0
        while offset + 4 + 1514 <= stream.count {
            #expect(stream[offset..<offset + 4] == [0, 0, 0x05, 0xea], "frame \(whole): \(taken)")
            #expect(stream[offset + 16..<offset + 18] == [0x88, 0xb5], "frame \(whole): \(taken)")
            guard stream[offset..<offset + 4] == [0, 0, 0x05, 0xea] else { break }
            offset += 4 + 1514
            whole += 1
        }
        #expect(whole > 0 && whole < frames, "\(whole) whole frames reached the peer; \(taken)")
        #expect(stream.count - offset < 4 + 1514)
    }

    final class HostSide: @unchecked Sendable {
        var result = "not run"
        /// The VM process's mount namespace and the test's.
        var namespaces: [String] = []
    }

    /// Firecracker's host side: CONNECT to the guest's port through PATH, then `size`
    /// random bytes out and the same bytes back. "OK", or what went wrong.
    static func echoThroughGuest(path: String, port: UInt32, size: Int) -> String {
        guard let fd = try? UnixSocket.connect(to: path) else { return "cannot connect to \(path)" }
        defer { close(fd) }
        LoopbackServer.writeAll(fd, Data("CONNECT \(port)\n".utf8))
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.last != 0x0a && read(fd, &byte, 1) == 1 { line.append(byte) }
        guard String(decoding: line, as: UTF8.self).hasPrefix("OK ") else { return "answer: \(String(decoding: line, as: UTF8.self))" }
        let payload = Data((0..<size).map { _ in UInt8.random(in: 0...255) })
        let writer = Thread {
            LoopbackServer.writeAll(fd, payload)
            shutdown(fd, Int32(SHUT_WR))
        }
        writer.start()
        var back = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while back.count < size {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            back.append(contentsOf: buffer[0..<count])
        }
        if back.count != size { return "\(back.count) of \(size) bytes came back" }
        return back == payload ? "OK" : "the bytes that came back differ"
    }

    func md5(_ data: Data) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("payload-\(UUID().uuidString.prefix(8))").path
        _ = FileManager.default.createFile(atPath: path, contents: data)
        defer { unlink(path) }
        return (try? WorkloadTests.shell("md5sum < '\(path)' | cut -d' ' -f1").output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? ""
    }
}
