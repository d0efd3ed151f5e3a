/// Where a virtio-net device's frames go and come from: passt's stream socket or a tap
/// device. Frames are Ethernet frames; a backend that `carriesHeader` puts the 12-byte
/// virtio-net header before each one, in both directions.
public protocol NetworkBackend: AnyObject, Sendable {
    /// Frames carry a virtio-net header (a tap with IFF_VNET_HDR), so the device can
    /// offer checksum and segmentation offloads.
    var carriesHeader: Bool { get }
    /// The descriptor that polls readable when a frame may be ready, and writable when
    /// a backend that was not `readyToSend` may be again.
    var descriptor: Int32 { get }
    /// Whether `send` may be called now: false while the backend still holds part of an
    /// earlier frame it could not pass on. Writes what it can of that part; never blocks.
    func readyToSend() -> Bool
    /// Sends one frame, given in parts, never blocking: what the peer cannot take now the
    /// backend keeps (one frame at most) or, where a wire would, drops. False: the backend
    /// is gone.
    func send(_ parts: [UnsafeRawBufferPointer]) -> Bool
    /// Reads the next frame into `buffer` if one is ready: its length, 0 when none is
    /// ready now, nil once the backend is gone. Never blocks. A frame longer than the
    /// buffer is dropped.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int?
    /// The offloads the driver accepted (VirtioNet.Feature bits), for a backend that
    /// must know what it may send.
    func acceptOffloads(_ features: UInt64)
}
