import Foundation
import Testing

@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux))
struct LinuxBootTests {
    @Test(arguments: [GuestImages.linuxBzImage, GuestImages.linuxELF])
    func minimalLinuxRunsACommandAndRebootsToExitZero(kernel: String) throws {
        let token = "token-\(UInt64.random(in: 0...UInt64.max))"
        let commandLine = "console=ttyS0 reboot=k panic=-1 -- echo \(token)"
        let result = try MicroVMProcess.run(["run", "--kernel", kernel, "--initrd", GuestImages.initrd, "--cmdline", commandLine],
                                            timeout: 300)
        #expect(result.lines.contains("microvm-guest: init started"), "output: \(result.stdout.suffix(2000))")
        #expect(result.lines.contains(token))
        #expect(result.lines.contains("microvm-guest: exit 0"))
        #expect(result.status == 0, "stderr: \(result.stderr)")
    }
}
