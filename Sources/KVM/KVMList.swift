/// The shape KVM uses for variable-length ioctl arguments (`kvm_cpuid2`, `kvm_msrs`):
/// a 32-bit count, 32 bits of padding, then a flexible array of `Element`.
/// Swift has no value type for a flexible array member, hence this owned buffer.
final class KVMList<Element> {
    let raw: UnsafeMutableRawPointer
    private let capacity: Int

    private static var headerSize: Int { 8 }
    private static var entrySize: Int { MemoryLayout<Element>.stride }

    init(capacity: Int) {
        self.capacity = capacity
        let size = Self.headerSize + capacity * Self.entrySize
        raw = .allocate(byteCount: size, alignment: 8)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        raw.storeBytes(of: UInt32(capacity), as: UInt32.self)
    }

    convenience init(_ entries: [Element]) {
        self.init(capacity: entries.count)
        let base = (raw + Self.headerSize).bindMemory(to: Element.self, capacity: entries.count)
        for (index, entry) in entries.enumerated() { base[index] = entry }
    }

    deinit {
        raw.deallocate()
    }

    /// The entries KVM reported (its count may be lower than the capacity).
    var entries: [Element] {
        let count = min(Int(raw.load(as: UInt32.self)), capacity)
        let base = (raw + Self.headerSize).bindMemory(to: Element.self, capacity: count)
        return Array(UnsafeBufferPointer(start: base, count: count))
    }
}
