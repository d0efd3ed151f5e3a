/// The hardware-reduced ACPI registers the FADT points at, one I/O port each: sleep
/// control (offset 0), sleep status (1) and reset (2). A write of SLP_EN with the S5
/// sleep type powers the machine off; the reset value written to the reset register
/// resets it. Linux's `poweroff` and `reboot` end up here when the kernel has ACPI.
public final class PowerRegisters: BusDevice, Sendable {
    public static let basePort: UInt64 = 0x600
    public static let portCount: UInt64 = 3
    public static let sleepControlOffset: UInt64 = 0
    public static let sleepStatusOffset: UInt64 = 1
    public static let resetOffset: UInt64 = 2
    /// What the guest writes to the reset register (the FADT's RESET_VALUE).
    public static let resetValue: UInt8 = 1
    /// The sleep type `_S5` names (SLP_TYP, bits 2–4 of the sleep control register).
    public static let softOffSleepType: UInt8 = 5
    static let sleepEnable: UInt8 = 1 << 5

    private let onPowerOff: @Sendable () -> Void
    private let onReset: @Sendable () -> Void

    /// Both callbacks run on the vCPU thread that wrote the register.
    public init(onPowerOff: @escaping @Sendable () -> Void, onReset: @escaping @Sendable () -> Void) {
        self.onPowerOff = onPowerOff
        self.onReset = onReset
    }

    /// Sleep status reads 0 (no wake event pending); there is nothing else to read.
    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        data.initializeMemory(as: UInt8.self, repeating: 0)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard data.count == 1, let value = data.first else { return }
        switch offset {
        case Self.sleepControlOffset:
            // Other sleep states are not offered (no _S1–_S4), so a write of one is ignored.
            if value & Self.sleepEnable != 0, (value >> 2) & 0x7 == Self.softOffSleepType {
                onPowerOff()
            }
        case Self.resetOffset:
            if value == Self.resetValue { onReset() }
        default:
            break
        }
    }
}

/// The registers hold no state: status always reads 0 and only the two commands act.
extension PowerRegisters: StatefulDevice {
    public func saveState(into writer: inout StateWriter) {}
    public func restoreState(from reader: inout StateReader) throws(StateError) {}
}
