import Foundation
import Testing

/// Creating, booting and destroying VMs must not leak descriptors or memory. The VMs
/// run in a process of their own (vmm-probe), so no other test can move the figures.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct LeakTests {
    @Test func thousandVMsLeaveNothingBehind() throws {
        // "fds=N rss_kib=M" after the warm-up, then after the measured VMs.
        let figures = try Probe.figures(["cycles", GuestImages.testGuestELF, "50", "1000"])
        try #require(figures.count == 2 && figures.allSatisfy { $0.count == 2 }, "vmm-probe printed: \(figures)")
        let descriptors = figures[1][0] - figures[0][0]
        let residentPerVM = Double(figures[1][1] - figures[0][1]) / 1000
        print("leaks: after 50 VMs \(figures[0][0]) fds, \(figures[0][1]) KiB RSS; after 1000 more \(figures[1][0]) fds, "
              + "\(figures[1][1]) KiB RSS: \(descriptors) fds and \(residentPerVM) KiB per VM")
        #expect(descriptors == 0)
        #expect(residentPerVM < 1, "RSS grew \(residentPerVM) KiB per VM")
    }
}
