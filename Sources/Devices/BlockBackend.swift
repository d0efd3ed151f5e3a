/// Where a block device's sectors live. Reads and writes go straight between the
/// guest's buffers and the backing store.
public protocol BlockBackend: AnyObject, Sendable {
    /// Size in bytes.
    var size: UInt64 { get }
    var isReadOnly: Bool { get }
    /// Fills `buffers` from `offset` on; false when the store could not deliver all of it.
    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool
    /// Writes `buffers` at `offset`; false when the store did not take all of it.
    func write(_ buffers: [UnsafeRawBufferPointer], at offset: UInt64) -> Bool
    /// Makes written data durable.
    func flush() -> Bool
}
