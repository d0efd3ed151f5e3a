@testable import Arch
@testable import Memory
import Testing
import X86

@Suite struct MPTableTests {
    func sum(_ bytes: ArraySlice<UInt8>) -> UInt8 { bytes.reduce(0, &+) }

    @Test(arguments: [1, 2, 8])
    func tablesCheckOutAndCountTheirEntries(cpus: Int) {
        let bytes = MPTable.bytes(cpus: cpus, at: 0x9fc00)
        // Floating pointer: "_MP_", points just after itself, one paragraph, spec 1.4, sums to 0.
        #expect(Array(bytes[0..<4]) == Array("_MP_".utf8))
        #expect(bytes.littleEndian(UInt32.self, at: 4) == 0x9fc10)
        #expect(bytes[8] == 1 && bytes[9] == 4)
        #expect(sum(bytes[0..<16]) == 0)

        let table = bytes[16...]
        let length = Int(bytes.littleEndian(UInt16.self, at: 16 + 4)!)
        #expect(Array(table.prefix(4)) == Array("PCMP".utf8))
        #expect(length == table.count)
        #expect(length == 44 + cpus * 20 + 8 + 8 + 16 * 8 + 2 * 8)
        #expect(sum(table) == 0)
        #expect(bytes.littleEndian(UInt16.self, at: 16 + 34) == UInt16(cpus + 2 + 16 + 2))
        #expect(bytes.littleEndian(UInt32.self, at: 16 + 36) == 0xfee0_0000)

        // Processor entries: APIC IDs in order, only the first is the bootstrap processor.
        for cpu in 0..<cpus {
            let entry = 16 + 44 + cpu * 20
            #expect(bytes[entry] == 0)
            #expect(bytes[entry + 1] == UInt8(cpu))
            #expect(bytes[entry + 3] == (cpu == 0 ? 3 : 1))
        }
        // Then the ISA bus, and the IOAPIC whose ID follows the CPUs'.
        let bus = 16 + 44 + cpus * 20
        #expect(bytes[bus] == 1 && Array(bytes[(bus + 2)..<(bus + 8)]) == Array("ISA   ".utf8))
        #expect(bytes[bus + 8] == 2 && bytes[bus + 9] == UInt8(cpus))
        #expect(bytes.littleEndian(UInt32.self, at: bus + 12) == 0xfec0_0000)
        // IRQ 4 (COM1) reaches IOAPIC pin 4.
        let irq4 = bus + 16 + 4 * 8
        #expect(Array(bytes[irq4..<(irq4 + 8)]) == [3, 0, 0, 0, 0, 4, UInt8(cpus), 4])
    }
}

@Suite struct CPUIDTopologyTests {
    func entry(_ function: UInt32, index: UInt32 = 0, eax: UInt32 = 0, ebx: UInt32 = 0, ecx: UInt32 = 0, edx: UInt32 = 0) -> CPUIDEntry {
        CPUIDEntry(function: function, index: index, eax: eax, ebx: ebx, ecx: ecx, edx: edx)
    }

    @Test func eachVCPUGetsItsAPICIDAndTheSharedTopology() {
        let supported = [entry(1, ebx: 0x0000_0800), entry(4, eax: 0x0000_0063), entry(0xb, index: 0), entry(0xb, index: 1),
                         entry(0xb, index: 2, ecx: 2), entry(0x8000_001e)]
        for vcpu in UInt32(0)..<4 {
            let entries = CPUIDTemplate.entries(supported: supported, vcpu: vcpu, cpus: 4)
            #expect(entries[0].ebx == (vcpu << 24) | (4 << 16) | 0x0800)
            #expect(entries[0].edx & (1 << 28) != 0)
            #expect(entries[0].ecx & (1 << 31) != 0, "hypervisor bit")
            #expect(entries[1].eax >> 26 == 3, "cores per package - 1")
            #expect(entries[1].eax & 0x3fff == 0x63)
            #expect(entries[2].ebx == 1 && entries[2].ecx == 0x100 && entries[2].edx == vcpu)
            #expect(entries[3].eax == 2 && entries[3].ebx == 4 && entries[3].ecx == 0x201 && entries[3].edx == vcpu)
            #expect(entries[4].eax == 0 && entries[4].ebx == 0 && entries[4].ecx == 2)
            #expect(entries[5].eax == vcpu)
        }
    }

    @Test func emulatingHostsWithholdParavirtualIPIs() {
        let features = entry(0x4000_0001, eax: 0xffff_ffff)
        #expect(CPUIDTemplate.entries(supported: [features], vcpu: 0, profile: .softwareEmulation)[0].eax == 0xffff_d7ff)
        #expect(CPUIDTemplate.entries(supported: [features], vcpu: 0, profile: .hardwareVirtualization)[0].eax == 0xffff_ffff)
    }

    @Test func oneVCPUHasNoHyperThreadingBit() {
        let entries = CPUIDTemplate.entries(supported: [entry(1, edx: 1 << 28)], vcpu: 0, cpus: 1)
        #expect(entries[0].edx & (1 << 28) == 0)
        #expect((entries[0].ebx >> 16) & 0xff == 1)
    }
}
