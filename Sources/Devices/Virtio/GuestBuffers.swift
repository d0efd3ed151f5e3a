/// The device-readable or device-writable buffers of a chain, in host memory, seen as
/// one run of bytes wherever the driver split it.
public struct GuestBuffers {
    public let buffers: [UnsafeMutableRawBufferPointer]
    public let count: Int

    public init(_ buffers: [UnsafeMutableRawBufferPointer]) {
        self.buffers = buffers
        count = buffers.reduce(0) { $0 + $1.count }
    }

    /// A copy of the first `limit` bytes (fewer when there are fewer).
    public func prefix(_ limit: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(limit, count))
        for buffer in buffers where bytes.count < limit {
            bytes += buffer.prefix(limit - bytes.count)
        }
        return bytes
    }

    /// The buffers' bytes from `offset` to `offset + length` (or to their end), in place.
    public func slices(from offset: Int, length: Int = .max) -> [UnsafeMutableRawBufferPointer] {
        var result: [UnsafeMutableRawBufferPointer] = []
        var skip = offset
        var left = length
        for buffer in buffers where left > 0 {
            guard skip < buffer.count else {
                skip -= buffer.count
                continue
            }
            let end = buffer.count - skip > left ? skip + left : buffer.count
            result.append(UnsafeMutableRawBufferPointer(rebasing: buffer[skip..<end]))
            left -= end - skip
            skip = 0
        }
        return result
    }

    /// Copies `bytes` in from the start; returns how many fitted.
    @discardableResult
    public func write(_ bytes: [UInt8]) -> Int {
        var written = 0
        for buffer in buffers where written < bytes.count {
            let count = min(buffer.count, bytes.count - written)
            buffer.copyBytes(from: bytes[written..<(written + count)])
            written += count
        }
        return written
    }
}

extension Virtqueue {
    /// The chain's readable and writable buffers in host memory (each was checked to lie
    /// in guest RAM when the chain was walked).
    public func buffers(of chain: DescriptorChain) throws(VirtqueueError) -> (readable: GuestBuffers, writable: GuestBuffers) {
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
        return (GuestBuffers(readable), GuestBuffers(writable))
    }

    /// The buffers of a chain the device only reads (a transmit queue's); a writable
    /// buffer in it breaks the queue.
    public func readableBuffers(of chain: DescriptorChain) throws(VirtqueueError) -> GuestBuffers {
        let (readable, writable) = try buffers(of: chain)
        guard writable.buffers.isEmpty else { throw .wrongDirection(head: chain.head, expected: "device-readable") }
        return readable
    }

    /// The buffers of a chain the device only writes (a receive queue's); a readable
    /// buffer in it breaks the queue.
    public func writableBuffers(of chain: DescriptorChain) throws(VirtqueueError) -> GuestBuffers {
        let (readable, writable) = try buffers(of: chain)
        guard readable.buffers.isEmpty else { throw .wrongDirection(head: chain.head, expected: "device-writable") }
        return writable
    }
}
