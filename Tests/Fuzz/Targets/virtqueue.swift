// libFuzzer target: the virtqueue chain walker over guest memory the fuzzer shapes.
// The first 6 bytes choose the queue size and ring offsets; the rest fill the ring area.
let memory = try! GuestMemory(size: 64 << 10)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 6 else { return 0 }
    let queueSize = UInt16(1) << (data[0] % 9)
    let table = GuestAddress(UInt64(data[1]) << 8)
    let available = GuestAddress(UInt64(data[2]) << 8)
    let used = GuestAddress(UInt64(data[3]) << 8 | 0x8000)
    let contents = UnsafeRawBufferPointer(start: data + 6, count: min(size - 6, 0x8000))
    try? memory.zero(at: 0, count: 0x10000)
    try? memory.write(contents, at: 0)
    guard let queue = try? Virtqueue(memory: memory, size: queueSize, descriptorTable: table, availableRing: available,
                                     usedRing: used, eventIndex: data[4] & 1 == 1) else { return 0 }
    for _ in 0..<Int(data[5] % 16) {
        guard let chain = try? queue.next() else { break }
        for buffer in chain.buffers {
            precondition(memory.contains(buffer.address, length: Int(buffer.length)), "a checked buffer lies outside guest memory")
        }
        queue.complete(chain, written: chain.writable.first?.length ?? 0)
        _ = queue.shouldInterrupt()
    }
    return 0
}
