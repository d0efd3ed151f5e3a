/// The header of every virtio-vsock packet (virtio 1.2, section 5.10.6), 44 bytes,
/// little-endian, followed by `length` bytes of payload for RW packets.
struct VsockHeader: Equatable {
    static let size = 44

    enum Operation: UInt16 {
        case request = 1
        case response = 2
        case reset = 3
        case shutdown = 4
        case readWrite = 5
        case creditUpdate = 6
        case creditRequest = 7
    }

    /// VIRTIO_VSOCK_TYPE_STREAM: the only type microvm serves.
    static let streamType: UInt16 = 1
    /// SHUTDOWN flags: the sender will receive no more, will send no more.
    static let shutdownReceive: UInt32 = 1
    static let shutdownSend: UInt32 = 2

    var sourceCID: UInt64 = 0
    var destinationCID: UInt64 = 0
    var sourcePort: UInt32 = 0
    var destinationPort: UInt32 = 0
    var length: UInt32 = 0
    var type: UInt16 = VsockHeader.streamType
    var operation: UInt16 = 0
    var flags: UInt32 = 0
    var bufferAllocation: UInt32 = 0
    var forwardCount: UInt32 = 0

    init(sourceCID: UInt64, destinationCID: UInt64, sourcePort: UInt32, destinationPort: UInt32,
         operation: Operation, length: UInt32 = 0, flags: UInt32 = 0, bufferAllocation: UInt32 = 0, forwardCount: UInt32 = 0) {
        self.sourceCID = sourceCID
        self.destinationCID = destinationCID
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.operation = operation.rawValue
        self.flags = flags
        self.bufferAllocation = bufferAllocation
        self.forwardCount = forwardCount
    }

    /// Reads a header from the first 44 bytes of `bytes` (which must hold them).
    init(_ bytes: [UInt8]) {
        func load<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value = T.zero
            for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (index * 8) }
            return value
        }
        sourceCID = load(0, UInt64.self)
        destinationCID = load(8, UInt64.self)
        sourcePort = load(16, UInt32.self)
        destinationPort = load(20, UInt32.self)
        length = load(24, UInt32.self)
        type = load(28, UInt16.self)
        operation = load(30, UInt16.self)
        flags = load(32, UInt32.self)
        bufferAllocation = load(36, UInt32.self)
        forwardCount = load(40, UInt32.self)
    }

    var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.size)
        func put<T: FixedWidthInteger>(_ value: T) {
            for index in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (index * 8))) }
        }
        put(sourceCID)
        put(destinationCID)
        put(sourcePort)
        put(destinationPort)
        put(length)
        put(type)
        put(operation)
        put(flags)
        put(bufferAllocation)
        put(forwardCount)
        return bytes
    }
}
