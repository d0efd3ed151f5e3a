@testable import Memory
import Testing

@Suite struct GuestMemoryTests {
    @Test func layoutBelowTheGapIsOneRegion() throws {
        let memory = try GuestMemory(size: 64 << 20)
        #expect(memory.regions.count == 1)
        #expect(memory.regions[0].start == 0)
        #expect(memory.size == 64 << 20)
    }

    @Test func layoutAboveTheGapContinuesAtFourGiB() {
        let regions = MemoryMap.ramRegions(size: 4 << 30)
        #expect(regions.count == 2)
        #expect(regions[0].start == 0 && regions[0].size == 0xd000_0000)
        #expect(regions[1].start == 0x1_0000_0000 && regions[1].size == (4 << 30) - 0xd000_0000)
    }

    @Test func findsTheRegionOfAnAddress() throws {
        let memory = try GuestMemory(layout: [(start: 0, size: 0x2000), (start: 0x10000, size: 0x1000)])
        try memory.store(UInt32(0xdead_beef), at: 0x10ffc)
        #expect(try memory.load(UInt32.self, at: 0x10ffc) == 0xdead_beef)
        #expect(memory.contains(0x1fff))
        #expect(!memory.contains(0x2000))
        #expect(!memory.contains(0x8000))
        #expect(memory.contains(0x10000, length: 0x1000))
    }

    @Test func accessCrossingARegionEndThrows() throws {
        // Adjacent regions are still separate mappings: no access may span both.
        let memory = try GuestMemory(layout: [(start: 0, size: 0x1000), (start: 0x1000, size: 0x1000)])
        #expect(throws: GuestMemoryError.outOfRange(address: 0xffe, length: 4)) {
            try memory.store(UInt32(1), at: 0xffe)
        }
        #expect(throws: GuestMemoryError.outOfRange(address: 0x1ffc, length: 8)) {
            _ = try memory.read(at: 0x1ffc, count: 8)
        }
        try memory.store(UInt32(1), at: 0xffc)
        try memory.store(UInt32(1), at: 0x1000)
    }

    @Test func accessOutsideRAMThrows() throws {
        let memory = try GuestMemory(size: 0x10000)
        #expect(throws: GuestMemoryError.outOfRange(address: 0x10000, length: 1)) {
            try memory.write([1], at: 0x10000)
        }
        #expect(throws: GuestMemoryError.outOfRange(address: GuestAddress(UInt64.max), length: 8)) {
            _ = try memory.load(UInt64.self, at: GuestAddress(UInt64.max))
        }
        #expect(throws: GuestMemoryError.outOfRange(address: 0, length: -1)) {
            _ = try memory.slice(at: 0, count: -1)
        }
    }

    @Test func integersAreLittleEndian() throws {
        let memory = try GuestMemory(size: 0x1000)
        try memory.store(UInt64(0x0102_0304_0506_0708), at: 0x10)
        #expect(try memory.read(at: 0x10, count: 8) == [8, 7, 6, 5, 4, 3, 2, 1])
        try memory.write([0x34, 0x12], at: 0x20)
        #expect(try memory.load(UInt16.self, at: 0x20) == 0x1234)
        #expect(try memory.load(Int8.self, at: 0x10) == 8)
    }

    @Test func freshMemoryIsZero() throws {
        let memory = try GuestMemory(size: 0x4000)
        #expect(try memory.read(at: 0, count: 0x4000).allSatisfy { $0 == 0 })
    }

    @Test func rejectsImpossibleSizes() {
        #expect(throws: GuestMemoryError.invalidSize(0, reason: "it must not be zero")) { try GuestMemory(size: 0) }
        #expect(throws: GuestMemoryError.invalidSize(4097, reason: "it must be a multiple of 4 KiB")) { try GuestMemory(size: 0x1001) }
        #expect(throws: GuestMemoryError.invalidSize(1 << 50, reason: "the largest supported size is 64 TiB")) { try GuestMemory(size: 1 << 50) }
    }

    @Test func rejectsOverlappingOrUnalignedLayouts() {
        #expect(throws: GuestMemoryError.invalidLayout("region at 0x1000 overlaps the one before it")) {
            try GuestMemory(layout: [(start: 0, size: 0x2000), (start: 0x1000, size: 0x1000)])
        }
        #expect(throws: GuestMemoryError.invalidLayout("region at 0x800 of 4096 bytes is empty or not page aligned")) { try GuestMemory(layout: [(start: 0x800, size: 0x1000)]) }
        #expect(throws: GuestMemoryError.invalidLayout("region at 0xfffffffffffff000 of 8192 bytes leaves the address space")) {
            try GuestMemory(layout: [(start: GuestAddress(UInt64.max - 0xfff), size: 0x2000)])
        }
    }

    @Test func addressArithmeticReportsOverflow() {
        #expect(GuestAddress(0x1001).alignedUp(to: 0x1000) == 0x2000)
        #expect(GuestAddress(0x2000).alignedUp(to: 0x1000) == 0x2000)
        #expect(GuestAddress(UInt64.max).adding(1) == nil)
        #expect(GuestAddress(UInt64.max - 1).alignedUp(to: 0x1000) == nil)
        #expect(GuestAddress(0xd000_0000).description == "0xd0000000")
    }
}
