@testable import ACPI
@testable import Arch
@testable import Boot
@testable import Devices
@testable import Memory
@testable import Runtime
import Testing

/// Where the VM generation ID lives and what renewing it does, without a guest.
@Suite struct VMGenerationIDTests {
    static let idRange = MemoryMap.generationID.rawValue..<(MemoryMap.generationID.rawValue + UInt64(VMGenerationID.size))

    @Test func theIDSitsInReservedMemoryClearOfTheTables() throws {
        let memory = try GuestMemory(size: 256 << 20)
        let reserved = E820Entry.map(for: memory).filter { $0.kind == .reserved }
        #expect(reserved.contains { $0.start <= Self.idRange.lowerBound && Self.idRange.upperBound <= $0.start + $0.size })
        let largestMPTable = UInt64(MPTable.bytes(cpus: ACPIPlatform.maximumCPUs).count)
        #expect(MemoryMap.mpTable.rawValue + largestMPTable <= Self.idRange.lowerBound)
        #expect(Self.idRange.upperBound <= MemoryMap.acpiTables.rawValue)
        // Linux looks for option ROMs (a 0x55 0xaa signature) from 0xc0000: random bytes stay below.
        #expect(Self.idRange.upperBound <= 0xc0000)
        #expect(MemoryMap.generationID.rawValue % 8 == 0)
    }

    @Test func itsInterruptIsNoOtherDevicesAndAnIOAPICPin() {
        #expect(!MemoryMap.virtioIRQs.contains(MemoryMap.generationIDInterrupt))
        #expect(MemoryMap.generationIDInterrupt != Serial16550.com1IRQ)
        // KVM's IOAPIC has 24 pins; 0–15 are ISA lines (timer, keyboard, COM ports, RTC, FPU, virtio).
        #expect((16..<24).contains(MemoryMap.generationIDInterrupt))
        #expect(VMGenerationID.acpiDevice.gsi == MemoryMap.generationIDInterrupt)
        #expect(VMGenerationID.acpiDevice.address == MemoryMap.generationID.rawValue)
    }

    @Test func renewingWritesNewBytesAndPulsesTheLine() throws {
        let memory = try GuestMemory(size: 2 << 20)
        try VMGenerationID.write(into: memory)
        let first = try memory.read(at: MemoryMap.generationID, count: VMGenerationID.size)
        let line = RecordingLine()
        try VMGenerationID.renew(memory: memory, interrupt: line)
        let second = try memory.read(at: MemoryMap.generationID, count: VMGenerationID.size)
        // 128 random bits: equal or all-zero IDs would mean no randomness reached them.
        #expect(first != second)
        #expect(first.contains { $0 != 0 } && second.contains { $0 != 0 })
        #expect(line.history == [true, false])
        let around = try memory.read(at: GuestAddress(MemoryMap.generationID.rawValue - 16), count: 16)
            + memory.read(at: GuestAddress(Self.idRange.upperBound), count: 16)
        #expect(around.allSatisfy { $0 == 0 }, "only the ID's 16 bytes are written")
    }

    @Test func memoryWithoutTheAddressIsOneLine() throws {
        let memory = try GuestMemory(layout: [(start: GuestAddress(0), size: 0x80000)])
        #expect(throws: VMGenerationID.Error.memory(.outOfRange(address: MemoryMap.generationID, length: VMGenerationID.size))) {
            try VMGenerationID.write(into: memory)
        }
        let line = RecordingLine()
        #expect(throws: VMGenerationID.Error.self) { try VMGenerationID.renew(memory: memory, interrupt: line) }
        #expect(line.history.isEmpty, "no notification of an ID that was not written")
    }
}
