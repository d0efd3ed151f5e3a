@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

@Suite struct RunControlTests {
    /// A vCPU registered after the stop is interrupted at once, before its thread exists.
    @Test func aLateVCPUIsStoppedAtOnce() throws {
        let control = try RunControl()
        let interrupted = Atomic<Int>(0)
        _ = control.register { interrupted.add(1, ordering: .relaxed) }
        control.stop(.reset)
        control.stop(.userQuit)
        _ = control.register { interrupted.add(10, ordering: .relaxed) }
        #expect(interrupted.load(ordering: .relaxed) == 11)
        #expect(control.exit == .reset, "the first reason wins")
    }
}
