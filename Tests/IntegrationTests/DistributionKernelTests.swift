import Foundation
import Testing

/// Debian's cloud kernel, as `scripts/build-guest debian` fetches it: built without the MP
/// table and command-line virtio devices, with its virtio drivers as modules that our
/// /init loads. It finds its machine only through the ACPI tables. Without hardware
/// virtualization it stops with the emulation diagnosis after minutes of emulated boot
/// (docs/acpi.md has the measurement), too long to repeat in every test run.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveDebian, GuestImages.missingDebian))
struct DistributionKernelTests {
    /// Two CPUs from the MADT, the virtio console and disk from the DSDT once their modules
    /// are in, and `poweroff` through the sleep control register ends microvm with 0.
    @Test(.enabled(if: GuestImages.hardwareVirtualization,
                   "a stock kernel needs hardware virtualization (vmx/svm): kvm_pvm's emulator lacks instructions it uses"))
    func debianCloudKernelBootsWithACPIAndPowersOff() throws {
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("debian-\(UUID().uuidString.prefix(8)).img").path
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(repeating: 0x5a, count: 1 << 20)))
        defer { try? FileManager.default.removeItem(atPath: disk) }
        let script = "echo cpus=$(nproc); echo disk=$(cat /sys/block/vda/size); echo on-hvc0 > /dev/hvc0; poweroff -f"
        let result = try MicroVMProcess.run(["run", "--cpus", "2", "--console", "virtio", "--disk", disk,
                                             "--kernel", GuestImages.debianKernel, "--initrd", GuestImages.debianInitrd,
                                             "--cmdline", "console=ttyS0 panic=-1 -- sh -c '\(script)'"], timeout: 300)
        #expect(result.lines.contains("cpus=2"), "output: \(result.stdout.suffix(3000))")
        #expect(result.lines.contains("disk=2048"))
        #expect(result.lines.contains("on-hvc0"))
        #expect(result.status == 0, "stderr: \(result.stderr)")
    }
}
