// libFuzzer target: virtio-blk requests from chains the fuzzer shapes in guest memory
// (see fuzzedQueue). Byte 5 chooses how often the driver notifies (bits 0-1), whether the
// device starts as an empty slot (bit 2), before which notification its disk is attached
// (bits 3-4) and whether that disk is read-only (bit 5). Whatever the requests say, none
// reaches past the disk's end nor writes to a read-only disk, an attach to the active
// device is announced once, and a second attach is refused.
final class FuzzDisk: BlockBackend, @unchecked Sendable {
    var bytes = [UInt8](repeating: 0x11, count: 16 * 512)
    let isReadOnly: Bool
    var size: UInt64 { UInt64(bytes.count) }
    init(readOnly: Bool) {
        isReadOnly = readOnly
    }
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
        precondition(!isReadOnly, "a write reached a read-only disk")
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

final class CountingInterrupt: VirtioInterrupt, @unchecked Sendable {
    var configurationChanges = 0
    func usedBuffers() {}
    func configurationChanged() { configurationChanges += 1 }
    func deviceNeedsReset(_ error: VirtqueueError) {}
}

let memory = try! GuestMemory(size: 64 << 10)
let disk = FuzzDisk(readOnly: false)
let readOnlyDisk = FuzzDisk(readOnly: true)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let queue = fuzzedQueue(data, size, in: memory) else { return 0 }
    let choice = data[5]
    let notifications = Int(choice % 4 + 1)
    let empty = choice & 4 != 0
    let attachBefore = Int(choice >> 3 & 3)
    let backend = choice & 0x20 != 0 ? readOnlyDisk : disk
    // Per input: the device refers to it weakly, and a weak reference to an object
    // that is never freed looks like a leak to LeakSanitizer.
    let interrupt = CountingInterrupt()
    let block = empty ? VirtioBlock(identifier: "fuzz") : VirtioBlock(backend: backend, identifier: "fuzz")
    block.activate(queues: [queue], features: 0, interrupt: interrupt)
    for index in 0..<notifications {
        if empty && index == attachBefore {
            precondition((try? block.attach(backend)) != nil, "an empty slot refused a disk")
            precondition(interrupt.configurationChanges == 1, "an attach to the active device was not announced once")
        }
        block.queueNotified(0)
    }
    let attached = !empty || attachBefore < notifications
    precondition((try? block.attach(backend)) == nil || !attached, "a second disk was taken")
    precondition(block.capacity == 16, "the capacity is not the disk's")
    precondition(disk.bytes.count == 16 * 512)
    return 0
}
