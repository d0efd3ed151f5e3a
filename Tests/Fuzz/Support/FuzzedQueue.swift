/// A virtqueue laid out by fuzzer input, shared by the targets that walk queues: the
/// first 6 bytes choose the queue size, the ring offsets and EVENT_IDX (bytes 0–4; byte 5
/// is the target's own), the rest fill guest memory where rings and buffers lie.
/// nil when the input is too short or the layout is refused.
func fuzzedQueue(_ data: UnsafePointer<UInt8>, _ size: Int, in memory: GuestMemory) -> Virtqueue? {
    guard size >= 6 else { return nil }
    let queueSize = UInt16(1) << (data[0] % 9)
    let table = GuestAddress(UInt64(data[1]) << 8)
    let available = GuestAddress(UInt64(data[2]) << 8)
    let used = GuestAddress(UInt64(data[3]) << 8 | 0x8000)
    try? memory.zero(at: 0, count: 0x10000)
    try? memory.write(UnsafeRawBufferPointer(start: data + 6, count: min(size - 6, 0x8000)), at: 0)
    return try? Virtqueue(memory: memory, size: queueSize, descriptorTable: table, availableRing: available,
                          usedRing: used, eventIndex: data[4] & 1 == 1)
}
