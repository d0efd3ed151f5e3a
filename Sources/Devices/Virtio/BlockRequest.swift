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

    /// `chain` ends with a writable buffer (the caller checked).
    init(_ chain: DescriptorChain, memory: GuestMemory) throws(VirtqueueError) {
        var readable: [UnsafeMutableRawBufferPointer] = []
        var writable: [UnsafeMutableRawBufferPointer] = []
        for buffer in chain.buffers {
            let slice: UnsafeMutableRawBufferPointer
            do {
                slice = try memory.slice(at: buffer.address, count: Int(buffer.length))
            } catch {
                throw .outsideMemory(what: "buffer", address: buffer.address, length: Int(buffer.length))
            }
            if buffer.writable { writable.append(slice) } else { readable.append(slice) }
        }
        let last = writable.removeLast()
        status = UnsafeMutableRawBufferPointer(rebasing: last[(last.count - 1)...])
        if last.count > 1 { writable.append(UnsafeMutableRawBufferPointer(rebasing: last[..<(last.count - 1)])) }
        writableData = writable

        var headerBytes: [UInt8] = []
        var data: [UnsafeMutableRawBufferPointer] = []
        for slice in readable {
            let taken = min(Self.headerSize - headerBytes.count, slice.count)
            headerBytes += slice[..<taken]
            if taken < slice.count { data.append(UnsafeMutableRawBufferPointer(rebasing: slice[taken...])) }
        }
        readableData = data
        header = headerBytes.count == Self.headerSize
            ? Header(type: headerBytes.littleEndian(UInt32.self, at: 0)!, sector: headerBytes.littleEndian(UInt64.self, at: 8)!)
            : nil
    }
}
