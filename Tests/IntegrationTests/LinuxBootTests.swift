import Foundation
import Testing

@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux))
struct LinuxBootTests {
    /// One boot per entry path (bzImage: `boot_params.acpi_rsdp_addr`; ELF: the PVH start
    /// info's `rsdp_paddr`), default command line: the kernel finds both CPUs in the MADT
    /// and the virtio console in the DSDT (no `virtio_mmio.device=` word), and `poweroff -f`
    /// reaches the sleep control register, which ends microvm with status 0.
    @Test(arguments: [GuestImages.linuxBzImage, GuestImages.linuxELF])
    func minimalLinuxFindsItsMachineThroughACPIAndPowersOff(kernel: String) throws {
        let token = "token-\(UInt64.random(in: 0...UInt64.max))"
        let script = "echo \(token); echo cpus=$(nproc); ls -1 /sys/bus/acpi/devices; cat /proc/cmdline; head -n 1 /proc/consoles; "
            + "poweroff -f; echo still-running; exit 3"
        let result = try MicroVMProcess.run(["run", "--no-template", "--cpus", "2", "--console", "virtio", "--kernel", kernel,
                                             "--initrd", GuestImages.initrd, "--", "sh", "-c", script], timeout: 600)
        #expect(result.lines.contains("microvm-guest: init started"), "output: \(result.stdout.suffix(3000))")
        #expect(result.lines.contains(token))
        #expect(result.lines.contains("cpus=2"), "output: \(result.stdout.suffix(3000))")
        #expect(result.lines.contains("LNRO0005:00"))
        #expect(result.lines.contains("PNP0501:00"))
        #expect(!result.stdout.contains("virtio_mmio.device="))
        #expect(result.lines.contains { $0.hasPrefix("hvc0 ") }, "the console should be hvc0: \(result.stdout.suffix(3000))")
        #expect(!result.lines.contains("still-running"))
        #expect(!result.stdout.contains("microvm-guest: exit"), "the guest powered off before /init could report")
        #expect(result.status == 0, "stderr: \(result.stderr)")
    }
}
