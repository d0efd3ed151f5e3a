import Foundation
import Testing

/// A guest that writes pseudo-random values to every port and virtio register and hands
/// the device a queue of random bytes: microvm keeps running (or reports the broken
/// queue once) and never traps.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct HostileGuestTests {
    @Test(arguments: ["serial", "virtio", "virtio", "virtio"])
    func portAndRegisterStorm(console: String) throws {
        let result = try MicroVMProcess.run(["run", "--console", console, "--kernel", GuestImages.testGuestELF,
                                             "--cmdline", "tg.storm"], timeout: 60)
        let seed = result.lines.first { $0.contains("storm: seed=") } ?? "no seed printed"
        #expect(!result.terminatedBySignal, "\(seed)")
        #expect(result.status == 0, "\(seed); stderr: \(result.stderr)")
        #expect(result.lines.contains("storm: done"), "\(seed)")
        #expect(result.lines.contains("microvm-test-guest: reset"), "\(seed)")
        let complaints = result.stderr.split(separator: "\n")
        #expect(complaints.count <= 1, "\(seed); stderr: \(result.stderr)")
        #expect(complaints.allSatisfy { $0.hasPrefix("microvm: virtio device 3: ") && $0.hasSuffix("the device needs a reset") },
                "\(seed); stderr: \(result.stderr)")
        print("storm (\(console)): \(seed)")
    }
}
