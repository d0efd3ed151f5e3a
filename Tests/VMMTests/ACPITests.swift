@testable import ACPI
import Devices
import Foundation
@testable import Memory
import Testing

/// What the ACPI tables say, checked twice: byte by byte here, and by ACPICA's own
/// disassembler (`iasl -d`, Debian's acpica-tools), a parser nobody here wrote.
@Suite struct ACPITests {
    static func platform(cpus: Int, virtio: Int) -> ACPIPlatform {
        ACPIPlatform(cpus: cpus, localAPICAddress: 0xfee0_0000, ioAPICAddress: 0xfec0_0000,
                     serial: .init(port: 0x3f8, irq: 4),
                     virtioDevices: (0..<virtio).map { .init(address: 0xd000_0000 + UInt64($0) * 0x1000, size: 0x1000, gsi: MemoryMap.virtioIRQs[$0]) },
                     power: .init(sleepControl: 0x600, sleepStatus: 0x601, reset: 0x602, resetValue: 1, softOffSleepType: 5),
                     generationID: .init(address: 0xbf000, gsi: 16))
    }

    func sum(_ bytes: [UInt8]) -> UInt8 { bytes.reduce(0, &+) }

    @Test func integersTakeTheirShortestEncoding() {
        #expect(AMLData.integer(0).aml == [0x00])
        #expect(AMLData.integer(1).aml == [0x01])
        #expect(AMLData.integer(0x3f8).aml == [0x0b, 0xf8, 0x03])
        #expect(AMLData.integer(0xff).aml == [0x0a, 0xff])
        #expect(AMLData.integer(0xd000_0000).aml == [0x0c, 0x00, 0x00, 0x00, 0xd0])
        #expect(AMLData.integer(0x1_0000_0000).aml == [0x0e, 0, 0, 0, 0, 1, 0, 0, 0])
    }

    @Test func eisaIDsCompressAsASLDoes() {
        // iasl compiles EisaId ("PNP0501") to 0x0105D041 and EisaId ("PNP0A03") to 0x030AD041.
        #expect(AMLData.compressedEISAID("PNP0501") == 0x0105_d041)
        #expect(AMLData.compressedEISAID("PNP0A03") == 0x030a_d041)
    }

    @Test func namesArePaddedAndPrefixed() {
        #expect(NameString.encode("_S5") == Array("_S5_".utf8))
        #expect(NameString.encode("\\_SB") == [0x5c] + Array("_SB_".utf8))
        #expect(NameString.encode("\\_SB.COM1") == [0x5c, 0x2e] + Array("_SB_COM1".utf8))
        #expect(NameString.encode("^A.B.C") == [0x5e, 0x2f, 3] + Array("A___B___C___".utf8))
    }

    @Test func namedBlocksCarryTheirNameFlagsAndTerms() {
        // Method (_STA, 0, NotSerialized) { Return (0x0F) }, as iasl compiles it.
        #expect(AML.Method("_STA", [AML.Return(.integer(0x0f))]).aml
            == [0x14, 0x09] + Array("_STA".utf8) + [0x00, 0xa4, 0x0a, 0x0f])
        #expect(AML.Method("ADD", arguments: 2, []).aml == [0x14, 0x06] + Array("ADD_".utf8) + [0x02])
        let name = AML.Name("_UID", .integer(1)).aml
        #expect(name == [0x08] + Array("_UID".utf8) + [0x01])
        #expect(AML.Device("COM1", [AML.Name("_UID", .integer(1))]).aml == [0x5b, 0x82, 0x0b] + Array("COM1".utf8) + name)
        #expect(AML.Scope("\\_SB", []).aml == [0x10, 0x06, 0x5c] + Array("_SB_".utf8))
    }

    @Test func eventStatementsEncodeAsASLDoes() {
        // If (Arg0 == 0x10) { Notify (\_SB.VGEN, 0x80) }, as `iasl -oa` compiles it.
        #expect(AML.If(AML.Equal(AML.Argument(0), AMLData.integer(16)), [AML.Notify("\\_SB.VGEN", 0x80)]).aml
            == [0xa0, 0x12, 0x93, 0x68, 0x0a, 0x10, 0x86, 0x5c, 0x2e] + Array("_SB_VGEN".utf8) + [0x0a, 0x80])
        #expect(AML.Argument(6).aml == [0x6e])
    }

    /// The VMGenID device and the GED, byte for byte as `iasl -oa` compiles them from:
    ///
    ///     Device (VGEN) {
    ///         Name (_HID, "MCVM0001")
    ///         Name (_CID, "VM_GEN_COUNTER")
    ///         Name (_DDN, "VM_Gen_Counter")
    ///         Method (ADDR, 0, NotSerialized) { Return (Package (0x02) { 0x000BF000, Zero }) }
    ///     }
    ///     Device (GED) {
    ///         Name (_HID, "ACPI0013")
    ///         Name (_CRS, ResourceTemplate () { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 16 } })
    ///         Method (_EVT, 1, NotSerialized) { If (LEqual (Arg0, 16)) { Notify (\_SB.VGEN, 0x80) } }
    ///     }
    @Test func generationIDDevicesAreWhatIASLCompiles() {
        let compiled = "5b8240055647454e085f4849440d4d43564d3030303100085f4349440d564d5f47454e5f434f554e54455200085f44444e0d564d5f4765"
            + "6e5f436f756e7465720014104144445200a41208020c00f00b00005b8243044745445f085f4849440d414350493030313300085f4352"
            + "53110e0a0b890600030110000000790014195f45565401a01293680a10865c2e5f53425f5647454e0a80"
        let aml = ACPITables.generationIDDevices(.init(address: 0xbf000, gsi: 16)).flatMap(\.aml)
        #expect(aml.map { String(format: "%02x", $0) }.joined() == compiled)
        // Above 4 GiB, ADDR's second element is the high dword.
        let high = ACPITables.generationIDDevices(.init(address: 0x2_0000_1000, gsi: 16)).flatMap(\.aml)
        let package: [UInt8] = [0x12, 0x07, 0x02, 0x0b, 0x00, 0x10, 0x0a, 0x02]
        #expect((0...(high.count - package.count)).contains { Array(high[$0..<($0 + package.count)]) == package })
        let dsdt = ACPITables.dsdtBody(Self.platform(cpus: 1, virtio: 0))
        #expect((0...(dsdt.count - aml.count)).contains { Array(dsdt[$0..<($0 + aml.count)]) == aml })
    }

    @Test(arguments: [0, 1, 62, 63, 64, 4094, 4095, 4096, 1_048_570, 1_048_576])
    func packageLengthsCountThemselves(bodySize: Int) {
        var bytes: [UInt8] = []
        bytes.appendPackage(opcode: [0x10], body: [UInt8](repeating: 0xaa, count: bodySize))
        let lead = bytes[1]
        let extra = Int(lead >> 6)
        var length = extra == 0 ? Int(lead & 0x3f) : Int(lead & 0x0f)
        for index in 0..<extra { length |= Int(bytes[2 + index]) << (4 + 8 * index) }
        #expect(length == bodySize + 1 + extra)
        #expect(bytes.count == 1 + length)
        #expect(extra == (bodySize + 1 < 64 ? 0 : bodySize + 2 < 4096 ? 1 : bodySize + 3 < 1 << 20 ? 2 : 3))
    }

    @Test(arguments: [(1, 0), (2, 1), (8, 8), (ACPIPlatform.maximumCPUs, 9)])
    func tablesAreWhereTheyPointAndSumToZero(cpus: Int, virtio: Int) throws {
        let tables = ACPITables(Self.platform(cpus: cpus, virtio: virtio), at: 0xe0000)
        let image = tables.image
        #expect(tables.rsdpAddress == 0xe0000)
        #expect(UInt64(image.count) <= 0x100000 - 0xe0000)
        func table(at address: UInt64) -> [UInt8] {
            let offset = Int(address - 0xe0000)
            let length = Int(image.littleEndian(UInt32.self, at: offset + 4)!)
            return Array(image[offset..<(offset + length)])
        }
        let rsdp = Array(image[0..<36])
        #expect(Array(rsdp[0..<8]) == Array("RSD PTR ".utf8))
        #expect(sum(Array(rsdp[0..<20])) == 0 && sum(rsdp) == 0)
        let xsdt = table(at: rsdp.littleEndian(UInt64.self, at: 24)!)
        #expect(Array(xsdt[0..<4]) == Array("XSDT".utf8) && sum(xsdt) == 0)
        let fadt = table(at: xsdt.littleEndian(UInt64.self, at: 36)!)
        let madt = table(at: xsdt.littleEndian(UInt64.self, at: 44)!)
        #expect(Array(fadt[0..<4]) == Array("FACP".utf8) && fadt.count == 276 && sum(fadt) == 0)
        #expect(fadt.littleEndian(UInt32.self, at: 112)! & (1 << 20) != 0, "hardware-reduced")
        let dsdt = table(at: fadt.littleEndian(UInt64.self, at: 140)!)
        #expect(Array(dsdt[0..<4]) == Array("DSDT".utf8) && sum(dsdt) == 0)
        #expect(Array(madt[0..<4]) == Array("APIC".utf8) && sum(madt) == 0)
        #expect(madt.count == 44 + 8 * cpus + 12 + 10 + 6)
        for cpu in 0..<cpus {
            #expect(Array(madt[(44 + 8 * cpu)..<(44 + 8 * cpu + 4)]) == [0, 8, UInt8(cpu), UInt8(cpu)])
        }
    }

    @Test(arguments: [(1, 0), (2, 1), (2, 4), (8, 8), (ACPIPlatform.maximumCPUs, 9)])
    func acpicaDisassemblesEveryTable(cpus: Int, virtio: Int) throws {
        let tables = ACPITables(Self.platform(cpus: cpus, virtio: virtio), at: 0xe0000)
        let directory = URL(fileURLWithPath: "/tmp/acpi-debug-\(cpus)-\(virtio)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        
        var text: [String: String] = [:]
        // iasl reads tables with the common header; the RSDP has none (checked byte by byte above).
        for table in tables.tables where table.signature != "RSD PTR " {
            let name = table.signature.lowercased()
            let file = directory.appendingPathComponent("\(name).dat")
            try Data(table.bytes).write(to: file)
            let output = try Self.disassemble(file)
            #expect(!output.lowercased().contains("invalid"), "\(name): \(output)")
            // Column alignment is iasl's business: runs of blanks count as one space.
            text[name] = try String(contentsOf: directory.appendingPathComponent("\(name).dsl"), encoding: .utf8)
                .split(whereSeparator: \.isWhitespace).joined(separator: " ")
        }
        let xsdt = try #require(text["xsdt"]), fadt = try #require(text["facp"])
        let madt = try #require(text["apic"]), dsdt = try #require(text["dsdt"])
        #expect(xsdt.contains("ACPI Table Address 0 : 00000000000E0070"))
        #expect(xsdt.contains("ACPI Table Address 1 : 00000000000E0190"))
        for listing in [xsdt, fadt, madt, dsdt] { #expect(!listing.contains("Incorrect checksum")) }
        #expect(fadt.contains("Hardware Reduced (V5) : 1"))
        #expect(fadt.contains("Reset Register Supported (V2) : 1"))
        #expect(fadt.contains("Reset Register : [Generic Address Structure] [074h 0116 1] Space ID : 01 [SystemIO]"))
        #expect(fadt.contains("Address : 0000000000000602 [080h 0128 1] Value to cause reset : 01"))
        #expect(fadt.contains("Sleep Control Register : [Generic Address Structure] [0F4h 0244 1] Space ID : 01 [SystemIO]"))
        #expect(fadt.contains("Address : 0000000000000600 [100h 0256 12] Sleep Status Register"))
        #expect(fadt.contains("Address : 0000000000000601 [10Ch 0268 8] Hypervisor ID"))
        #expect(madt.components(separatedBy: "Subtable Type : 00 [Processor Local APIC]").count - 1 == cpus)
        for cpu in 0..<cpus {
            #expect(madt.contains("Processor ID : \(Self.hex(cpu)) [\(Self.offset(44 + 8 * cpu + 3)) 1] Local Apic ID : \(Self.hex(cpu))"))
        }
        #expect(madt.contains("Subtable Type : 01 [I/O APIC] [\(Self.offset(44 + 8 * cpus + 1)) 1] Length : 0C"))
        #expect(madt.contains("I/O Apic ID : \(Self.hex(cpus))"))
        #expect(madt.contains("Address : FEC00000"))
        #expect(madt.contains("Subtable Type : 02 [Interrupt Source Override]"))
        #expect(madt.contains("Subtable Type : 04 [Local APIC NMI]"))
        #expect(madt.contains("Interrupt Input LINT : 01"))
        #expect(dsdt.contains("Device (COM1) { Name (_HID, EisaId (\"PNP0501\")"))
        #expect(dsdt.contains("IO (Decode16, 0x03F8, // Range Minimum 0x03F8, // Range Maximum 0x01, // Alignment 0x08, // Length ) IRQNoFlags () {4}"))
        #expect(dsdt.components(separatedBy: "Name (_HID, \"LNRO0005\")").count - 1 == virtio)
        for index in 0..<virtio {
            #expect(dsdt.contains("""
                Device (VR0\(index)) { Name (_HID, "LNRO0005") // _HID: Hardware ID Name (_UID, \(Self.amlInteger(index))) // _UID: Unique ID \
                Name (_CRS, ResourceTemplate () // _CRS: Current Resource Settings { Memory32Fixed (ReadWrite, \
                0x\(String(format: "%08X", 0xd000_0000 + index * 0x1000)), // Address Base 0x00001000, // Address Length ) \
                Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x\(String(format: "%08X", MemoryMap.virtioIRQs[index])), } }) }
                """))
        }
        #expect(dsdt.contains("Name (\\_S5, Package (0x04) // _S5_: S5 System State { 0x05, Zero, Zero, Zero })"))
        #expect(dsdt.contains("""
            Device (VGEN) { Name (_HID, "MCVM0001") // _HID: Hardware ID Name (_CID, "VM_GEN_COUNTER") // _CID: Compatible ID \
            Name (_DDN, "VM_Gen_Counter") // _DDN: DOS Device Name Method (ADDR, 0, NotSerialized) { Return (Package (0x02) { 0x000BF000, Zero }) } }
            """))
        #expect(dsdt.contains("""
            Device (GED) { Name (_HID, "ACPI0013" /* Generic Event Device */) // _HID: Hardware ID \
            Name (_CRS, ResourceTemplate () // _CRS: Current Resource Settings { Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, ) { 0x00000010, } }) \
            Method (_EVT, 1, NotSerialized) // _EVT: Event { If ((Arg0 == 0x10)) { Notify (\\_SB.VGEN, 0x80) // Status Change } } }
            """))
    }

    @Test func powerRegistersActOnS5AndTheResetValueOnly() {
        let events = Events()
        let registers = PowerRegisters(onPowerOff: { events.add("off") }, onReset: { events.add("reset") })
        func write(_ offset: UInt64, _ value: UInt8) {
            withUnsafeBytes(of: value) { registers.write(offset: offset, data: $0) }
        }
        write(PowerRegisters.sleepStatusOffset, 0x80) // clearing wake status
        write(PowerRegisters.sleepControlOffset, 3 << 2 | 1 << 5) // S3: not offered
        write(PowerRegisters.sleepControlOffset, 5 << 2) // S5 without SLP_EN
        write(PowerRegisters.resetOffset, 0xfe)
        #expect(events.list.isEmpty)
        withUnsafeBytes(of: UInt16(5 << 2 | 1 << 5)) { registers.write(offset: PowerRegisters.sleepControlOffset, data: $0) }
        #expect(events.list.isEmpty, "a 16-bit write is not the byte register's")
        write(PowerRegisters.sleepControlOffset, 5 << 2 | 1 << 5)
        write(PowerRegisters.resetOffset, PowerRegisters.resetValue)
        #expect(events.list == ["off", "reset"])
        var status: UInt8 = 0xff
        withUnsafeMutableBytes(of: &status) { registers.read(offset: PowerRegisters.sleepStatusOffset, into: $0) }
        #expect(status == 0)
    }

    final class Events: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ item: String) { lock.withLock { items.append(item) } }
        var list: [String] { lock.withLock { items } }
    }

    static func hex(_ value: Int) -> String { String(format: "%02X", value) }

    /// How iasl labels a field's offset: hex with an h, then decimal.
    static func offset(_ value: Int) -> String { String(format: "%03Xh %04d", value, value) }

    /// How iasl prints a small integer in ASL.
    static func amlInteger(_ value: Int) -> String { value == 0 ? "Zero" : value == 1 ? "One" : String(format: "0x%02X", value) }

    /// Runs `iasl -d` on one table file; the listing lands beside it as `.dsl`.
    static func disassemble(_ file: URL) throws -> String {
        guard let iasl = ["/usr/bin/iasl", "/usr/local/bin/iasl"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw DisassemblerMissing()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: iasl)
        process.arguments = ["-d", file.lastPathComponent]
        process.currentDirectoryURL = file.deletingLastPathComponent()
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        
        return output
    }

    struct DisassemblerMissing: Error, CustomStringConvertible {
        var description: String { "iasl is not installed: run scripts/setup (Debian's acpica-tools)" }
    }

    struct DisassemblyFailed: Error, CustomStringConvertible {
        let output: String
        var description: String { "iasl -d failed: \(output)" }
    }
}
