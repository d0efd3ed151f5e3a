import Foundation
import Testing
import VMM

/// Creating, booting and destroying VMs in one process must not leak descriptors or memory.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct LeakTests {
    static func openDescriptors() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    static func residentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test func thousandVMsLeaveNothingBehind() throws {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let configuration = VMConfiguration(kernel: GuestImages.testGuestELF, commandLine: KernelCommandLine("leak"),
                                            memorySize: 16 << 20, consoleOutput: null, consoleInput: false)
        func cycle() throws {
            let vm = try MicroVM(configuration)
            let exit = vm.run()
            #expect(exit == .reset)
        }
        for _ in 0..<10 { try cycle() }
        let descriptors = Self.openDescriptors()
        let resident = Self.residentKiB()
        for _ in 0..<990 { try cycle() }
        print("leaks: after 10 VMs \(descriptors) fds, \(resident) KiB RSS; after 1000 VMs \(Self.openDescriptors()) fds, \(Self.residentKiB()) KiB RSS")
        // Other tests run in this process at the same time, so allow a little drift:
        // a leak of one descriptor or a page per VM would show as 990 or ~4 MB.
        #expect(Self.openDescriptors() <= descriptors + 8, "descriptors: \(descriptors) after 10 VMs")
        #expect(Self.residentKiB() <= resident + 2048, "RSS: \(resident) KiB after 10 VMs")
    }
}
