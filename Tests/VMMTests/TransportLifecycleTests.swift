@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

@Suite struct TransportLifecycleTests {
    let memory: GuestMemory
    let device = RecordingDevice()
    let transport: VirtioMMIOTransport

    init() throws {
        memory = try GuestMemory(size: 1 << 20)
        transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: RecordingLine()) { _ in }
    }

    func write(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value) { transport.write(offset: offset, data: $0) }
    }

    /// A queue the driver never made ready is not handed to the device and its
    /// notifications are ignored: nothing walks rings at whatever address it holds.
    @Test func queuesThatAreNotReadyAreNeverWalked() {
        transport.bringUp(bothReady: false)
        write(0x50, 0)
        write(0x50, 1)
        write(0x50, 7)
        #expect(device.recorded == ["activate -q", "notify 1"])
    }

    /// A reset on one vCPU and the driver's next activation on another: the device sees
    /// the reset finish before the activation, never the activation wiped by a late reset.
    @Test func aResetInProgressIsNotOvertakenByAnActivation() throws {
        transport.bringUp(bothReady: true)
        device.holdReset.store(true, ordering: .releasing)
        let transport = self.transport
        let resetter = try NativeThread(name: "reset") {
            withUnsafeBytes(of: UInt32(0)) { transport.write(offset: 0x70, data: $0) }
        }
        device.resetStarted.wait()
        let activator = try NativeThread(name: "activate") { transport.bringUp(bothReady: true) }
        // Give the activation every chance to overtake the held reset.
        usleep(100_000)
        device.releaseReset.signal()
        resetter.join(every: 1000) {}
        activator.join(every: 1000) {}
        #expect(device.recorded == ["activate qq", "reset", "activate qq"])
    }
}
