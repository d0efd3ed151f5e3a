/// A fixed-capacity ring of the most recent bytes: what a late console client sees first.
struct ByteRing {
    private var storage: [UInt8]
    private var start = 0
    private(set) var count = 0

    init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    var capacity: Int { storage.count }

    /// Appends, dropping the oldest bytes once full.
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        for byte in bytes.suffix(capacity) {
            storage[(start + count) % capacity] = byte
            if count == capacity {
                start = (start + 1) % capacity
            } else {
                count += 1
            }
        }
    }

    /// The contents, oldest first.
    var contents: [UInt8] {
        (0..<count).map { storage[(start + $0) % capacity] }
    }
}
