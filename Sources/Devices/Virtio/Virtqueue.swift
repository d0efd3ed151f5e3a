import Memory
import Synchronization

/// One buffer of a descriptor chain, already checked to lie inside guest memory.
public struct VirtqueueBuffer: Equatable, Sendable {
    public let address: GuestAddress
    public let length: UInt32
    /// Device-writable (the guest receives into it) rather than device-readable.
    public let writable: Bool
}

/// A descriptor chain the driver made available: its head index and its buffers in order.
public struct DescriptorChain: Equatable, Sendable {
    public let head: UInt16
    public let buffers: [VirtqueueBuffer]

    public var readable: [VirtqueueBuffer] { buffers.filter { !$0.writable } }
    public var writable: [VirtqueueBuffer] { buffers.filter(\.writable) }
}

/// The device side of a virtio 1.x split virtqueue in guest memory. Every value the
/// guest controls (indices, addresses, lengths, flags) is checked before use, and a
/// violation is thrown rather than followed, so the VMM never reads or writes outside
/// guest RAM whatever the guest writes. Not thread-safe: its device serialises use.
public final class Virtqueue: @unchecked Sendable {
    static let descriptorSize: UInt64 = 16
    static let flagNext: UInt16 = 1
    static let flagWrite: UInt16 = 2
    static let flagIndirect: UInt16 = 4
    /// VRING_AVAIL_F_NO_INTERRUPT in the available ring's flags.
    static let availableNoInterrupt: UInt16 = 1
    /// Buffers one chain may have, indirect ones included: bounds the host memory and
    /// work one chain can cause, whatever the guest writes (Linux stays far below it).
    public static let maximumChainLength = 1024

    public let memory: GuestMemory
    public let size: UInt16
    public let descriptorTable: GuestAddress
    public let availableRing: GuestAddress
    public let usedRing: GuestAddress
    /// VIRTIO_F_EVENT_IDX was negotiated: notifications follow used_event / avail_event.
    public let eventIndex: Bool

    /// Next available-ring slot to consume.
    public private(set) var nextAvailable: UInt16 = 0
    /// Next used-ring slot to fill (the used index as published).
    public private(set) var nextUsed: UInt16 = 0
    /// Used index when the driver was last notified.
    private var lastSignalledUsed: UInt16 = 0
    private var signalledOnce = false

    /// Where the device is in the rings: all a snapshot needs of a queue beyond its layout.
    public struct Position: Equatable, Sendable {
        public var nextAvailable: UInt16
        public var nextUsed: UInt16
        public var lastSignalledUsed: UInt16
        public var signalledOnce: Bool
    }

    public var position: Position {
        get { Position(nextAvailable: nextAvailable, nextUsed: nextUsed, lastSignalledUsed: lastSignalledUsed, signalledOnce: signalledOnce) }
        set {
            nextAvailable = newValue.nextAvailable
            nextUsed = newValue.nextUsed
            lastSignalledUsed = newValue.lastSignalledUsed
            signalledOnce = newValue.signalledOnce
        }
    }

    /// Checks that the three rings of a queue of `size` entries lie in guest memory.
    public init(memory: GuestMemory, size: UInt16, descriptorTable: GuestAddress, availableRing: GuestAddress,
                usedRing: GuestAddress, eventIndex: Bool) throws(VirtqueueError) {
        self.memory = memory
        self.size = size
        self.descriptorTable = descriptorTable
        self.availableRing = availableRing
        self.usedRing = usedRing
        self.eventIndex = eventIndex
        let count = Int(size)
        // Alignments from the virtio 1.x split-ring layout; ring indices are accessed atomically.
        try Self.check(memory, "descriptor table", descriptorTable, count * 16, alignment: 16)
        try Self.check(memory, "available ring", availableRing, 6 + count * 2, alignment: 2)
        try Self.check(memory, "used ring", usedRing, 6 + count * 8, alignment: 4)
        if Self.overlaps(usedRing.rawValue, UInt64(6 + count * 8), availableRing) {
            throw .overlapsAvailableIndex(what: "used ring", address: usedRing)
        }
    }

    /// Whether `length` bytes at `start` cover any of the available ring's flags and index.
    private static func overlaps(_ start: UInt64, _ length: UInt64, _ availableRing: GuestAddress) -> Bool {
        start < availableRing.rawValue + 4 && availableRing.rawValue < start + length
    }

    private static func check(_ memory: GuestMemory, _ what: String, _ address: GuestAddress, _ length: Int,
                              alignment: UInt64 = 1) throws(VirtqueueError) {
        guard memory.contains(address, length: length) else { throw .outsideMemory(what: what, address: address, length: length) }
        guard address.rawValue % alignment == 0 else { throw .misaligned(what: what, address: address, alignment: alignment) }
    }

    private func load<T: FixedWidthInteger>(_ type: T.Type, _ address: GuestAddress) -> T {
        // Ring addresses were checked at construction and offsets stay inside them.
        (try? memory.load(T.self, at: address)) ?? 0
    }

    /// The driver's available index; ring entries it publishes are visible after this load.
    var availableIndex: UInt16 { (try? memory.loadAcquire(at: GuestAddress(availableRing.rawValue + 2))) ?? 0 }

    private var availableEvent: GuestAddress { GuestAddress(usedRing.rawValue + 4 + UInt64(size) * 8) }

    /// The next chain the driver made available, or nil when there is none. With
    /// EVENT_IDX, before saying there is none it asks to be notified of the next one
    /// (avail_event), then looks again: a chain the driver published meanwhile, having
    /// read the old avail_event and so not notified, is not left behind (store, full
    /// fence, re-check, as rust-vmm's enable_notification does).
    public func next() throws(VirtqueueError) -> DescriptorChain? {
        var available = availableIndex
        if available == nextAvailable {
            guard eventIndex else { return nil }
            try? memory.storeRelease(nextAvailable, at: availableEvent)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            available = availableIndex
            guard available != nextAvailable else { return nil }
        }
        guard available &- nextAvailable <= size else {
            throw .availableIndexJump(previous: nextAvailable, now: available, size: size)
        }
        let slot = GuestAddress(availableRing.rawValue + 4 + UInt64(nextAvailable % size) * 2)
        let head = load(UInt16.self, slot)
        nextAvailable &+= 1
        return try chain(from: head)
    }

    /// Walks the chain from `head`, following NEXT links and one level of indirect table.
    public func chain(from head: UInt16) throws(VirtqueueError) -> DescriptorChain {
        guard head < size else { throw .headOutOfRange(index: head, size: size) }
        var buffers: [VirtqueueBuffer] = []
        var table = descriptorTable
        var tableSize = size
        var index = head
        var steps = 0
        var inIndirect = false
        var sawWritable = false
        while true {
            steps += 1
            guard steps <= Int(tableSize) else { throw .chainTooLong(head: head) }
            let entry = GuestAddress(table.rawValue + UInt64(index) * Self.descriptorSize)
            let address = load(UInt64.self, entry)
            let length = load(UInt32.self, GuestAddress(entry.rawValue + 8))
            let flags = load(UInt16.self, GuestAddress(entry.rawValue + 12))
            let next = load(UInt16.self, GuestAddress(entry.rawValue + 14))
            if flags & Self.flagIndirect != 0 {
                guard !inIndirect else { throw .nestedIndirect(head: head) }
                guard length > 0, length % 16 == 0, length / 16 <= 0xffff else { throw .badIndirectTable(head: head, length: length) }
                try Self.check(memory, "indirect descriptor table", GuestAddress(address), Int(length))
                table = GuestAddress(address)
                tableSize = UInt16(length / 16)
                index = 0
                steps = 0
                inIndirect = true
                continue
            }
            guard length > 0 else { throw .zeroLength(head: head) }
            guard buffers.count < Self.maximumChainLength else { throw .chainTooLong(head: head) }
            try Self.check(memory, "buffer", GuestAddress(address), Int(length))
            let writable = flags & Self.flagWrite != 0
            if writable { sawWritable = true } else if sawWritable { throw .readableAfterWritable(head: head) }
            if writable && Self.overlaps(address, UInt64(length), availableRing) {
                throw .overlapsAvailableIndex(what: "writable buffer", address: GuestAddress(address))
            }
            buffers.append(VirtqueueBuffer(address: GuestAddress(address), length: length, writable: writable))
            guard flags & Self.flagNext != 0 else { break }
            guard next < tableSize else { throw .nextOutOfRange(head: head, next: next) }
            index = next
        }
        return DescriptorChain(head: head, buffers: buffers)
    }

    /// Returns a chain to the driver with `length` bytes written into its writable buffers.
    public func complete(_ chain: DescriptorChain, written length: UInt32) {
        let slot = GuestAddress(usedRing.rawValue + 4 + UInt64(nextUsed % size) * 8)
        try? memory.store(UInt32(chain.head), at: slot)
        try? memory.store(length, at: GuestAddress(slot.rawValue + 4))
        nextUsed &+= 1
        // A release store: the element is visible before the index that publishes it.
        try? memory.storeRelease(nextUsed, at: GuestAddress(usedRing.rawValue + 2))
    }

    /// Whether the driver wants an interrupt for what was completed since the last one.
    public func shouldInterrupt() -> Bool {
        // The used index we published must be ordered before reading what the driver
        // asked for, or both sides may miss each other's update.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        defer {
            lastSignalledUsed = nextUsed
            signalledOnce = true
        }
        if eventIndex {
            let usedEvent = (try? memory.loadAcquire(at: GuestAddress(availableRing.rawValue + 4 + UInt64(size) * 2))) ?? 0
            // vring_need_event: the driver asked to hear once used passes used_event.
            return !signalledOnce || (nextUsed &- usedEvent &- 1) < (nextUsed &- lastSignalledUsed)
        }
        let flags = (try? memory.loadAcquire(at: availableRing)) ?? 0
        return flags & Self.availableNoInterrupt == 0
    }
}
