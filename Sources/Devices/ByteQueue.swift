/// A first-in first-out queue of bytes in fixed storage: what a device holds for the
/// guest, or the console keeps for a late client, never grows beyond the capacity it was
/// made with, however the bytes come and go.
package struct ByteQueue {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0

    package init(capacity: Int) {
        storage = [UInt8](repeating: 0, count: capacity)
    }

    var capacity: Int { storage.count }
    var space: Int { capacity - count }
    var isEmpty: Bool { count == 0 }

    /// Appends as many of `bytes` as fit; returns how many that was.
    @discardableResult
    mutating func push(contentsOf bytes: some Collection<UInt8>) -> Int {
        let taken = min(bytes.count, space)
        guard taken > 0 else { return 0 }
        // At most two runs: up to the end of the storage, then from its start.
        let incoming = Array(bytes.prefix(taken))
        let tail = (head + count) % capacity
        let first = min(taken, capacity - tail)
        storage.replaceSubrange(tail..<(tail + first), with: incoming[0..<first])
        storage.replaceSubrange(0..<(taken - first), with: incoming[first...])
        count += taken
        return taken
    }

    mutating func pop() -> UInt8? {
        guard count > 0 else { return nil }
        let byte = storage[head]
        head = (head + 1) % capacity
        count -= 1
        return byte
    }

    mutating func removeAll() {
        head = 0
        count = 0
    }

    /// Appends all of `bytes`, dropping the oldest ones to make room (a history of the most recent).
    package mutating func pushDroppingOldest(_ bytes: UnsafeRawBufferPointer) {
        let kept = bytes.suffix(capacity)
        let excess = kept.count - space
        if excess > 0 {
            head = (head + excess) % capacity
            count -= excess
        }
        push(contentsOf: kept)
    }

    /// The bytes held, oldest first.
    package var contents: [UInt8] {
        (0..<count).map { storage[(head + $0) % capacity] }
    }
}
