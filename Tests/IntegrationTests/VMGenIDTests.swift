import Foundation
import Glibc
import Testing

/// The VM generation ID in the minimal Linux, in one boot: the vmgenid driver binds to the
/// DSDT's device and the GED takes its interrupt; two VMs restored one after the other from
/// one snapshot each log the reseed, then read different bytes from /dev/urandom. Without the
/// notification both go on from the CRNG state in the snapshot: with it disabled (2026-12-06),
/// two clones that read first thing read the same 16 bytes, and two that first waited 5 s
/// read different ones (something in the kernel's RNG moves with time). So the test waits for the
/// reseed's log line before it reads, rather than race the notification.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux))
struct VMGenIDTests {
    @Test func restoredClonesReseedTheirRandomNumbers() throws {
        let work = try WorkloadTests.scratch("vmgenid")
        defer { try? FileManager.default.removeItem(at: work) }
        let path = { (name: String) in work.appendingPathComponent(name).path }
        let snapshot = path("vm.snap")

        var answers: [String: String] = [:]
        // Booted (--no-template): a guest restored from a template has reseeded once already.
        let booted = try MicroVMProcess.run(["run", "--no-template", "--console-socket", path("console"), "--api-socket", path("api")],
                                            timeout: 900) { _, _ in
            guard let console = try? ConsoleClient(path: path("console")) else { return }
            guard console.wait(for: "/ # ", timeout: 600) else {
                answers["boot"] = console.transcript
                _ = try? SnapshotTests.ctl(path("api"), "stop")
                return
            }
            console.type("echo driver-$(ls /sys/bus/acpi/drivers/vmgenid | grep -c :) ged-$(grep -c ACPI:Ged /proc/interrupts)"
                + " errors-$(dmesg | grep -c 'ACPI.*Error')")
            answers["bound"] = console.wait(for: "driver-1 ged-1 errors-0", timeout: 120) ? "yes" : console.transcript
            answers["snapshot"] = (try? SnapshotTests.ctl(path("api"), "snapshot", snapshot))?.stdout
            answers["stop"] = (try? SnapshotTests.ctl(path("api"), "stop"))?.stdout
        }
        #expect(answers["boot"] == nil, "the guest's shell did not come up: \(answers["boot"] ?? "")")
        #expect(booted.status == 0, "\(booted.stderr)")
        #expect(answers["bound"] == "yes", "the vmgenid driver or the GED did not bind, or ACPI reported an error: \(answers["bound"] ?? "")")
        try #require(answers["snapshot"]?.contains(#""ok":true"#) == true, "\(answers)")

        var bytes: [String] = []
        for index in 1...2 {
            let line = try clone(snapshot, console: path("console\(index)"), api: path("api\(index)"))
            #expect(line.forks == 1, "clone \(index) did not log one reseed: \(line)")
            bytes.append(line.random)
        }
        #expect(bytes.count == 2 && bytes[0] != bytes[1], "both clones read \(bytes)")
    }

    /// Restores a VM, waits (at most 5 s) for its kernel to log the reseed, then reads 16
    /// bytes of /dev/urandom; returns how many reseeds it logged and the bytes in hex.
    func clone(_ snapshot: String, console consolePath: String, api: String) throws -> (forks: Int, random: String) {
        let process = Process()
        process.executableURL = MicroVMProcess.executable
        process.arguments = ["restore", snapshot, "--console-socket", consolePath, "--api-socket", api]
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        guard let console = try? ConsoleClient(path: consolePath) else {
            kill(process.processIdentifier, SIGKILL)
            Issue.record("restore did not serve its console: \(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
            return (0, "")
        }
        console.type("for i in $(seq 25); do dmesg | grep -q 'virtual machine fork' && break; sleep 0.2; done; "
            + "echo fork-$(dmesg | grep -c 'virtual machine fork') random-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n') done-$((40+2))")
        let answered = console.wait(for: "done-42", timeout: 480)
        #expect(try SnapshotTests.ctl(api, "stop").status == 0)
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!process.isRunning && process.terminationStatus == 0,
                "\(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        guard answered, let match = console.transcript.firstMatch(of: /fork-(\d+) random-([0-9a-f]{32}) done-42/) else {
            Issue.record("the clone did not answer: \(console.transcript)")
            return (0, "")
        }
        return (Int(match.1) ?? 0, String(match.2))
    }
}
