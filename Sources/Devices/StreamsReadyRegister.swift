/// A register of our own through which a container's guest (`oci-init`) says that it
/// reads its control lines now: a 32-bit write of 1 at offset 0. Until then microvm holds
/// the lines back, since a virtio-console port that nobody has opened drops its input.
/// Reads return 0; anything else written is ignored.
public final class StreamsReadyRegister: BusDevice, Sendable {
    public static let size: UInt64 = 4
    private let ready: @Sendable () -> Void

    /// `ready` runs on the writing vCPU's thread, for each write of 1.
    public init(ready: @escaping @Sendable () -> Void) {
        self.ready = ready
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        data.initializeMemory(as: UInt8.self, repeating: 0)
    }

    public func write(offset: UInt64, data: UnsafeRawBufferPointer) {
        guard offset == 0, data.count == 4, UInt32(littleEndian: data.loadUnaligned(as: UInt32.self)) == 1 else { return }
        ready()
    }
}
