// libFuzzer target: virtio-blk requests from chains the fuzzer shapes in guest memory
// (see fuzzedQueue); byte 5 chooses how often the driver notifies.
final class FuzzDisk: BlockBackend, @unchecked Sendable {
    var bytes = [UInt8](repeating: 0x11, count: 16 * 512)
    var size: UInt64 { UInt64(bytes.count) }
    var isReadOnly: Bool { false }
    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool {
        var position = Int(offset)
        for buffer in buffers {
            precondition(position + buffer.count <= bytes.count, "a read past the disk's end was let through")
            buffer.copyBytes(from: bytes[position..<(position + buffer.count)])
            position += buffer.count
        }
        return true
    }
    func write(_ buffers: [UnsafeRawBufferPointer], at offset: UInt64) -> Bool {
        var position = Int(offset)
        for buffer in buffers {
            precondition(position + buffer.count <= bytes.count, "a write past the disk's end was let through")
            bytes.replaceSubrange(position..<(position + buffer.count), with: buffer)
            position += buffer.count
        }
        return true
    }
    func flush() -> Bool { true }
}

final class QuietInterrupt: VirtioInterrupt {
    func usedBuffers() {}
    func configurationChanged() {}
    func deviceNeedsReset(_ error: VirtqueueError) {}
}

let memory = try! GuestMemory(size: 64 << 10)
let disk = FuzzDisk()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let queue = fuzzedQueue(data, size, in: memory) else { return 0 }
    // Per input: the device refers to it weakly, and a weak reference to an object
    // that is never freed looks like a leak to LeakSanitizer.
    let interrupt = QuietInterrupt()
    let block = VirtioBlock(backend: disk, identifier: "fuzz")
    block.activate(queues: [queue], features: 0, interrupt: interrupt)
    for _ in 0..<Int(data[5] % 4 + 1) { block.queueNotified(0) }
    precondition(disk.bytes.count == 16 * 512)
    return 0
}
