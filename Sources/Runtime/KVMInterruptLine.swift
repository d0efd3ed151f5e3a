import Devices
import KVM

/// An interrupt line of the in-kernel irqchip (PIC and IOAPIC input `irq`).
struct KVMInterruptLine: InterruptLine {
    let vm: VirtualMachine
    let irq: UInt32
    let onError: @Sendable (KVMError) -> Void

    func setLevel(_ high: Bool) {
        do {
            try vm.setInterruptLine(irq, active: high)
        } catch {
            onError(error)
        }
    }
}
