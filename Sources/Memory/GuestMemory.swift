import CLinux
import Glibc

/// Guest RAM: host mappings, each backing one range of guest physical addresses:
/// anonymous for a booted VM, or private copy-on-write views of a snapshot's memory file
/// for a restored one, so that VMs restored from one file share the pages none of them wrote.
/// Every access is bounds-checked against a single region and throws rather than traps,
/// since most addresses it sees come from the guest or from files we were handed.
public final class GuestMemory: @unchecked Sendable {
    /// One contiguous range of guest RAM and the host memory behind it.
    public struct Region: @unchecked Sendable {
        public let start: GuestAddress
        public let size: Int
        public let host: UnsafeMutableRawPointer

        /// One past the last byte.
        public var end: UInt64 { start.rawValue + UInt64(size) }
    }

    /// Largest RAM we accept: 64 TiB keeps every address far inside 48-bit guest physical space.
    public static let maximumSize: UInt64 = 1 << 46

    public let regions: [Region]

    /// Total RAM in bytes.
    public var size: UInt64 { regions.reduce(0) { $0 + UInt64($1.size) } }

    /// RAM of `size` bytes laid out around the 32-bit MMIO gap (`MemoryMap.ramRegions`).
    public convenience init(size: UInt64) throws(GuestMemoryError) {
        try Self.check(size)
        try self.init(layout: MemoryMap.ramRegions(size: size))
    }

    /// RAM of `size` bytes whose contents are the memory file `fd` (the regions one after
    /// another, as `save(to:)` writes them), mapped privately: the guest's writes stay in
    /// this process. The file must be exactly `size` bytes.
    public convenience init(size: UInt64, privatelyMapping fd: Int32) throws(GuestMemoryError) {
        try Self.check(size)
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, UInt64(status.st_size) == size else {
            throw .invalidLayout("the memory file does not hold \(size) bytes")
        }
        try self.init(layout: MemoryMap.ramRegions(size: size), file: fd)
    }

    private static func check(_ size: UInt64) throws(GuestMemoryError) {
        guard size > 0 else { throw .invalidSize(size, reason: "it must not be zero") }
        guard size % MemoryMap.pageSize == 0 else {
            throw .invalidSize(size, reason: "it must be a multiple of 4 KiB")
        }
        guard size <= Self.maximumSize else { throw .invalidSize(size, reason: "the largest supported size is 64 TiB") }
    }

    /// RAM at explicit ranges, which must be page aligned, non-empty and disjoint; backed
    /// by `file` (the ranges one after another) when given, else anonymous.
    public init(layout: [(start: GuestAddress, size: UInt64)], file: Int32? = nil) throws(GuestMemoryError) {
        let sorted = layout.sorted { $0.start < $1.start }
        var previousEnd: UInt64 = 0
        for (index, range) in sorted.enumerated() {
            guard range.size > 0, range.size % MemoryMap.pageSize == 0, range.start.rawValue % MemoryMap.pageSize == 0 else {
                throw .invalidLayout("region at \(range.start) of \(range.size) bytes is empty or not page aligned")
            }
            guard index == 0 || range.start.rawValue >= previousEnd else {
                throw .invalidLayout("region at \(range.start) overlaps the one before it")
            }
            let (end, overflow) = range.start.rawValue.addingReportingOverflow(range.size)
            guard !overflow, range.size <= Self.maximumSize else {
                throw .invalidLayout("region at \(range.start) of \(range.size) bytes leaves the address space")
            }
            previousEnd = end
        }
        var mapped: [Region] = []
        var fileOffset: off_t = 0
        for range in sorted {
            let length = Int(range.size)
            // NORESERVE: the guest's untouched RAM costs the host nothing.
            let host = if let file {
                mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, file, fileOffset)
            } else {
                mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
            }
            fileOffset += off_t(length)
            guard let host, host != MAP_FAILED else {
                let error = errno
                for region in mapped { munmap(region.host, region.size) }
                throw .mappingFailed(size: length, errno: error)
            }
            mapped.append(Region(start: range.start, size: length, host: host))
        }
        regions = mapped
    }

    deinit {
        for region in regions { munmap(region.host, region.size) }
    }

    /// Writes all of RAM to `fd`, the regions one after another, leaving a hole wherever a
    /// page is all zeros: RAM the guest never touched takes no disk space.
    public func save(to fd: Int32) throws(GuestMemoryError) {
        let page = Int(MemoryMap.pageSize)
        guard ftruncate(fd, off_t(size)) == 0 else { throw .saveFailed(errno: errno) }
        var fileOffset = 0
        for region in regions {
            var pageStart = 0
            while pageStart < region.size {
                guard !Self.isZero(region.host + pageStart, count: page) else {
                    pageStart += page
                    continue
                }
                // One write for a run of pages that are not all zeros.
                var runEnd = pageStart + page
                while runEnd < region.size && !Self.isZero(region.host + runEnd, count: page) { runEnd += page }
                var written = 0
                while written < runEnd - pageStart {
                    let result = pwrite(fd, region.host + pageStart + written, runEnd - pageStart - written,
                                        off_t(fileOffset + pageStart + written))
                    if result < 0 && errno == EINTR { continue }
                    guard result > 0 else { throw .saveFailed(errno: result < 0 ? errno : EIO) }
                    written += result
                }
                pageStart = runEnd
            }
            fileOffset += region.size
        }
    }

    private static func isZero(_ start: UnsafeMutableRawPointer, count: Int) -> Bool {
        let words = UnsafeBufferPointer(start: start.assumingMemoryBound(to: UInt64.self), count: count / 8)
        return words.allSatisfy { $0 == 0 }
    }

    /// Whether `length` bytes at `address` lie inside one region.
    public func contains(_ address: GuestAddress, length: Int = 1) -> Bool {
        locate(address, length: length) != nil
    }

    /// The host memory behind `count` bytes at `address`, valid as long as this object lives.
    public func slice(at address: GuestAddress, count: Int) throws(GuestMemoryError) -> UnsafeMutableRawBufferPointer {
        guard let (region, offset) = locate(address, length: count) else {
            throw .outOfRange(address: address, length: count)
        }
        return UnsafeMutableRawBufferPointer(start: region.host + offset, count: count)
    }

    public func read(at address: GuestAddress, count: Int) throws(GuestMemoryError) -> [UInt8] {
        Array(try slice(at: address, count: count))
    }


    public func write(_ bytes: UnsafeRawBufferPointer, at address: GuestAddress) throws(GuestMemoryError) {
        let destination = try slice(at: address, count: bytes.count)
        destination.copyMemory(from: bytes)
    }

    public func write(_ bytes: [UInt8], at address: GuestAddress) throws(GuestMemoryError) {
        let destination = try slice(at: address, count: bytes.count)
        bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
    }

    /// Fills `count` bytes at `address` with zeros.
    public func zero(at address: GuestAddress, count: Int) throws(GuestMemoryError) {
        let destination = try slice(at: address, count: count)
        destination.initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// Reads a little-endian integer.
    public func load<T: FixedWidthInteger>(_ type: T.Type = T.self, at address: GuestAddress) throws(GuestMemoryError) -> T {
        let source = try slice(at: address, count: MemoryLayout<T>.size)
        return T(littleEndian: source.loadUnaligned(as: T.self))
    }

    /// Writes a little-endian integer.
    public func store<T: FixedWidthInteger>(_ value: T, at address: GuestAddress) throws(GuestMemoryError) {
        let destination = try slice(at: address, count: MemoryLayout<T>.size)
        destination.storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Loads a 16-bit value the guest's CPUs may be writing (a ring index) in one atomic
    /// access: what the guest wrote before publishing it is visible after this load.
    public func loadAcquire(_ type: UInt16.Type = UInt16.self, at address: GuestAddress) throws(GuestMemoryError) -> UInt16 {
        UInt16(littleEndian: clinux_load_acquire_u16(try slice(at: address, count: 2).baseAddress!))
    }

    /// Stores a 16-bit value the guest's CPUs may be reading (a ring index) in one atomic
    /// access, after everything this thread wrote before it.
    public func storeRelease(_ value: UInt16, at address: GuestAddress) throws(GuestMemoryError) {
        clinux_store_release_u16(try slice(at: address, count: 2).baseAddress!, value.littleEndian)
    }

    private func locate(_ address: GuestAddress, length: Int) -> (Region, Int)? {
        guard length >= 0 else { return nil }
        for region in regions where address.rawValue >= region.start.rawValue && address.rawValue < region.end {
            let offset = Int(address.rawValue - region.start.rawValue)
            return length <= region.size - offset ? (region, offset) : nil
        }
        return nil
    }
}
