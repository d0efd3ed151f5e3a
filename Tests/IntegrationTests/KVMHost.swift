import Foundation
import Testing

/// What the machine running the tests offers, so tests that need KVM skip with a reason.
enum KVMHost {
    static let isAvailable = access("/dev/kvm", R_OK | W_OK) == 0
    static let skipReason: Comment = "/dev/kvm is missing or not accessible on this machine"
    /// KVM without VT-x/AMD-V: guest kernel code is emulated and some instructions are missing.
    static let emulatesGuestCode = FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")
}
