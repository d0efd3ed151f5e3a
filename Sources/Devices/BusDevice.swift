/// A device as a bus sees it: reads and writes at offsets from the start of its range.
/// Devices know nothing of KVM; they are driven by the bus and raise an `InterruptLine`.
public protocol BusDevice: AnyObject, Sendable {
    /// Fills `data` with what the device returns for a read of `data.count` bytes at `offset`.
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    /// Takes a write of `data` at `offset`.
    func write(offset: UInt64, data: UnsafeRawBufferPointer)
}

/// An interrupt line a device drives, wired by the runtime to the interrupt controller.
public protocol InterruptLine: Sendable {
    /// Raises (true) or lowers (false) the line.
    func setLevel(_ high: Bool)
}
