import Foundation
import Testing

@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct TestGuestBootTests {
    static func randomInitrd() throws -> (path: String, bytes: [UInt8]) {
        let bytes = (0..<(4096 + Int.random(in: 0..<4096))).map { _ in UInt8.random(in: 0...255) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-initrd-\(UUID().uuidString)").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (path, bytes)
    }

    @Test(arguments: [(GuestImages.testGuestELF, "pvh"), (GuestImages.testGuestBzImage, "linux64")])
    func reportsBootProtocolCommandLineAndInitrd(kernel: String, protocolName: String) throws {
        let initrd = try Self.randomInitrd()
        defer { try? FileManager.default.removeItem(atPath: initrd.path) }
        let commandLine = "console=ttyS0 token=\(UInt64.random(in: 0...UInt64.max)) several words"
        let result = try MicroVMProcess.run(["run", "--kernel", kernel, "--initrd", initrd.path, "--cmdline", commandLine, "--memory", "64M"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let crc = String(crc32(initrd.bytes), radix: 16)
        let expectedCRC = String(repeating: "0", count: 8 - crc.count) + crc
        #expect(result.lines.contains("microvm-test-guest: hello"))
        #expect(result.lines.contains("boot: \(protocolName)"))
        #expect(result.lines.contains("cmdline: \(commandLine)\(GuestImages.hostParameters)"))
        #expect(result.lines.contains("initrd: size=\(initrd.bytes.count) crc32=\(expectedCRC)"))
        #expect(result.lines.contains("e820: start=0x0000000000000000 size=0x000000000009fc00 type=1"))
        #expect(result.lines.contains("e820: start=0x0000000000100000 size=0x0000000003f00000 type=1"))
        #expect(result.lines.contains("microvm-test-guest: reset"))
    }

    /// The test guest's own minimal virtio driver checks the transport without Linux.
    /// Without ACPI, the devices (the console, then virtio-rng) are declared on the command
    /// line for kernels that read them there.
    @Test func testGuestDrivesVirtioConsole() throws {
        let result = try MicroVMProcess.run(["run", "--console", "virtio", "--no-acpi", "--kernel", GuestImages.testGuestELF,
                                             "--cmdline", "tg.virtio"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.lines.contains("cmdline: tg.virtio\(GuestImages.hostParameters) virtio_mmio.device=4K@0xd0000000:5 "
            + "virtio_mmio.device=4K@0xd0001000:6"), "\(result.lines)")
        #expect(result.lines.contains("virtio: magic=0x74726976 version=2 device=3"))
        #expect(result.lines.contains("microvm-test-guest: hello over virtio-console"))
        #expect(result.lines.contains("virtio: transmitq used 1"))
    }

    @Test func unemulatedInstructionStopsWithADiagnosis() throws {
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--cmdline", "tg.int3"])
        #expect(!result.terminatedBySignal)
        #expect(result.status == 2)
        #expect(result.lines.contains("microvm-test-guest: executing int3"))
        let diagnosis = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(diagnosis.count == 1, "stderr: \(result.stderr)")
        let line = String(diagnosis.first ?? "")
        if KVMHost.emulatesGuestCode {
            #expect(line.hasPrefix("microvm: guest stopped: KVM internal error: emulation failure (suberror 1) at RIP 0x"))
            #expect(line.contains("instruction bytes cc "))
            #expect(line.contains("no hardware virtualization"))
        } else {
            // With hardware virtualization int3 without an IDT is a triple fault.
            #expect(line.hasPrefix("microvm: guest stopped: triple fault"))
        }
    }

    /// A guest that prints for ever keeps its console log within the limit, cut from the
    /// vCPU that prints under its seccomp filter, and the run ends as a stop should.
    @Test func aConsoleLogStaysWithinItsLimit() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-capped-log-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let marker = "[microvm: the console log keeps at most 4096 bytes; "
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestELF, "--cmdline", "tg.loop",
                                             "--console-log", log, "--console-log-size", "4K"], timeout: 60) { process, _ in
            let deadline = Date().addingTimeInterval(40)
            // Two cuts: the second moves output the first kept.
            while Date() < deadline {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                if text.hasPrefix(marker), let dropped = Int(text.dropFirst(marker.count).prefix { $0 != " " }), dropped > 8192 { break }
                usleep(20_000)
            }
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(result.stderr == "microvm: stopped by signal 15\n")
        #expect(result.status == 128 + SIGTERM)
        let logged = try #require(FileManager.default.contents(atPath: log))
        #expect(logged.count <= 4096)
        let text = String(decoding: logged, as: UTF8.self)
        #expect(text.hasPrefix(marker), "\(text.prefix(200))")
        #expect(text.hasSuffix("microvm-test-guest: loop\n") || text.contains("microvm-test-guest: loop\nmicrovm-test-guest: loop\n"))
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func stopSignalEndsAHaltedGuestCleanly(signal: Int32) throws {
        let result = try MicroVMProcess.run(["run", "--kernel", GuestImages.testGuestBzImage, "--cmdline", "tg.halt"], timeout: 30) { process, output in
            let deadline = Date().addingTimeInterval(20)
            while !output().contains("microvm-test-guest: halting") && Date() < deadline { usleep(10_000) }
            usleep(100_000)
            kill(process.processIdentifier, signal)
        }
        #expect(result.lines.contains("microvm-test-guest: halting"))
        #expect(!result.terminatedBySignal)
        #expect(result.status == 128 + signal)
        #expect(result.stderr == "microvm: stopped by signal \(signal)\n")
    }
}
