import Memory

/// A virtio-blk request as laid out in a descriptor chain, wherever its buffer
/// boundaries fall: the header is the first 16 device-readable bytes, the data is
/// whatever follows them, and the status is the last device-writable byte.
struct BlockRequest {
    struct Header {
        let type: UInt32
        let sector: UInt64
    }

    static let headerSize = 16

    /// nil when the chain has fewer than 16 readable bytes.
    let header: Header?
    /// Readable bytes after the header: a write's data.
    let readableData: [UnsafeMutableRawBufferPointer]
    /// Writable bytes before the status: a read's destination.
    let writableData: [UnsafeMutableRawBufferPointer]
    let status: UnsafeMutableRawBufferPointer
    var deviceWritten = 0

    var readableBytes: Int { readableData.reduce(0) { $0 + $1.count } }
    var writableBytes: Int { writableData.reduce(0) { $0 + $1.count } }

    /// The chain's buffers, whose last writable byte is the status (the caller checked there is one).
    init(_ buffers: (readable: GuestBuffers, writable: GuestBuffers)) {
        var writable = buffers.writable.buffers
        let last = writable.removeLast()
        status = UnsafeMutableRawBufferPointer(rebasing: last[(last.count - 1)...])
        if last.count > 1 { writable.append(UnsafeMutableRawBufferPointer(rebasing: last[..<(last.count - 1)])) }
        writableData = writable
        readableData = buffers.readable.slices(from: Self.headerSize)
        let headerBytes = buffers.readable.prefix(Self.headerSize)
        header = headerBytes.count == Self.headerSize
            ? Header(type: headerBytes.littleEndian(UInt32.self, at: 0)!, sector: headerBytes.littleEndian(UInt64.self, at: 8)!)
            : nil
    }
}
