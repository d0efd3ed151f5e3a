/// A register of our own through which the guest reports its command's exit status:
/// a 32-bit write of 0–255 at offset 0 (docs/exit-status.md). Reads return 0. Anything
/// else written (other offsets or widths, values above 255) is ignored.
public final class ExitStatusRegister: BusDevice, Sendable {
    public static let size: UInt64 = 4
    private let report: @Sendable (Int32) -> Void

    /// `report` gets each status the guest writes, on the writing vCPU's thread.
    public init(report: @escaping @Sendable (Int32) -> Void) {
        self.report = report
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        data.initializeMemory(as: UInt8.self, repeating: 0)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard offset == 0, data.count == 4 else { return }
        let value = UInt32(littleEndian: data.loadUnaligned(as: UInt32.self))
        guard value <= 255 else { return }
        report(Int32(value))
    }
}
