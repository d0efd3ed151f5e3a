// libFuzzer target: virtio-blk requests from chains the fuzzer shapes in guest memory.
// The first 6 bytes choose the queue size, ring offsets and how often the driver
// notifies; the rest fill the memory where rings, headers and buffers lie.
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
    guard size >= 6 else { return 0 }
    let queueSize = UInt16(1) << (data[0] % 9)
    let table = GuestAddress(UInt64(data[1]) << 8)
    let available = GuestAddress(UInt64(data[2]) << 8)
    let used = GuestAddress(UInt64(data[3]) << 8 | 0x8000)
    try? memory.zero(at: 0, count: 0x10000)
    try? memory.write(UnsafeRawBufferPointer(start: data + 6, count: min(size - 6, 0x8000)), at: 0)
    guard let queue = try? Virtqueue(memory: memory, size: queueSize, descriptorTable: table, availableRing: available,
                                     usedRing: used, eventIndex: data[4] & 1 == 1) else { return 0 }
    // Per input: the device refers to it weakly, and a weak reference to an object
    // that is never freed looks like a leak to LeakSanitizer.
    let interrupt = QuietInterrupt()
    let block = VirtioBlock(backend: disk, identifier: "fuzz")
    block.activate(queues: [queue], features: 0, interrupt: interrupt)
    for _ in 0..<Int(data[5] % 4 + 1) { block.queueNotified(0) }
    precondition(disk.bytes.count == 16 * 512)
    return 0
}
