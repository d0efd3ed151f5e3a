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
