// libFuzzer target: the virtqueue chain walker over guest memory the fuzzer shapes.
// The first 6 bytes choose the queue size and ring offsets; the rest fill the ring area.
let memory = try! GuestMemory(size: 64 << 10)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let queue = fuzzedQueue(data, size, in: memory) else { return 0 }
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
