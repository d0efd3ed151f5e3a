/// The keyboard controller at ports 0x60 and 0x64, only as far as a guest resets
/// the machine through it (command 0xFE, Linux's `reboot=k`).
public final class I8042: BusDevice, @unchecked Sendable {
    public static let basePort: UInt64 = 0x60
    public static let portCount: UInt64 = 5
    static let commandOffset: UInt64 = 4
    static let resetCommand: UInt8 = 0xfe

    private let onReset: @Sendable () -> Void

    /// `onReset` runs on the vCPU thread that wrote the reset command.
    public init(onReset: @escaping @Sendable () -> Void) {
        self.onReset = onReset
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        // Data and status read 0: nothing waiting and the input buffer empty, so writers
        // never wait. The ports between them are not ours.
        let claimed = offset == 0 || offset == Self.commandOffset
        data.initializeMemory(as: UInt8.self, repeating: claimed ? 0 : 0xff)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        if offset == Self.commandOffset, data.first == Self.resetCommand {
            onReset()
        }
    }
}

/// The i8042 holds no state: reads answer "nothing waiting" and only the reset command acts.
extension I8042: StatefulDevice {
    public func saveState(into writer: inout StateWriter) {}
    public func restoreState(from reader: inout StateReader) throws(StateError) {}
}
