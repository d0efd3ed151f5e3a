import Foundation
import Testing

/// The VM's threads run under seccomp allow-lists (every other integration test runs with
/// them on); a call off the list ends the process with a line that names it.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct SeccompTests {
    @Test func aCallOffTheListEndsTheProcessWithAClearMessage() throws {
        let result = try MicroVMProcess.run(["run", "--seccomp-selftest", "--kernel", GuestImages.testGuestELF, "--cmdline", "x"])
        #expect(!result.lines.contains("microvm-test-guest: reset"), "the process ends at the blocked call")
        #expect(!result.terminatedBySignal)
        #expect(result.status == 128 + SIGSYS)
        // 110 is getppid on x86_64, the call --seccomp-selftest makes on the vCPU thread at the first console output.
        #expect(result.stderr.contains("microvm: seccomp: blocked system call 110,"), "stderr: \(result.stderr)")
    }

    @Test func noSeccompTurnsTheFiltersOff() throws {
        let result = try MicroVMProcess.run(["run", "--no-seccomp", "--seccomp-selftest", "--kernel", GuestImages.testGuestELF, "--cmdline", "x"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.lines.contains("microvm-test-guest: reset"))
        #expect(result.stderr.isEmpty)
    }
}

/// What glibc does behind microvm's back on a filtered thread: a thread arena that grew
/// and is freed makes glibc shrink its heap, and the first shrink reads
/// /proc/sys/vm/overcommit_memory (once killed the event loop after a guest's 9p fids were
/// freed at a reset, and the guest's status became 159). Each filter lets that, and the
/// thread's end, through (vmm-probe; no KVM needed).
struct SeccompRuntimeTests {
    @Test(arguments: ["vcpu", "vcpu-shares", "loop", "loop-control"])
    func theAllocatorAndAThreadsEndPassTheFilter(_ filter: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("seccomp-exit-\(UUID().uuidString.prefix(8)).log").path
        let log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(log); unlink(path) }
        let child = try ChildProcess(Probe.path, ["seccomp-exit", filter], stdout: log, stderr: log)
        // A blocked call inside malloc once hung the SIGSYS handler: a hang fails too.
        let ending = try #require(child.wait(timeout: 30), "vmm-probe seccomp-exit \(filter) did not end in 30 s")
        let printed = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        #expect(ending.status == 0, "vmm-probe seccomp-exit \(filter): \(printed)")
    }
}
