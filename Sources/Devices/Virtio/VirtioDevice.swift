/// What a virtio device implements; `VirtioMMIOTransport` does the rest (registers,
/// feature negotiation, queue setup, status and reset, interrupts). Devices see
/// checked `Virtqueue`s and raise interrupts through the `VirtioInterrupt` they are given.
/// A snapshot saves a device's own state; the transport saves the queues and puts
/// them back (through `activate`) before the device restores its own.
public protocol VirtioDevice: AnyObject, Sendable, StatefulDevice {
    /// Virtio device ID (3: console).
    var deviceType: UInt32 { get }
    /// Largest size of each queue; their count is the number of queues.
    var maximumQueueSizes: [UInt16] { get }
    /// Device-specific feature bits (the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC).
    var deviceFeatures: UInt64 { get }
    /// Bytes of the device configuration space at `offset`.
    func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer)
    /// Starts the device once the driver set DRIVER_OK, with the negotiated features and
    /// a queue for each one the driver made ready (nil for the others).
    func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt)
    /// The driver notified queue `index`, which it had made ready.
    func queueNotified(_ index: Int)
    /// Drops the queues and any state bound to them: the driver reset the device.
    func reset()
}

/// How a device tells the driver about used buffers, configuration changes, or a
/// queue it had to give up on. Devices hold it weakly: it is their transport, which
/// holds them.
public protocol VirtioInterrupt: AnyObject, Sendable {
    func usedBuffers()
    func configurationChanged()
    /// The guest broke the queue rules: report once and set DEVICE_NEEDS_RESET.
    func deviceNeedsReset(_ error: VirtqueueError)
}

public enum VirtioFeature {
    public static let indirectDescriptors: UInt64 = 1 << 28
    public static let eventIndex: UInt64 = 1 << 29
    public static let version1: UInt64 = 1 << 32
}
