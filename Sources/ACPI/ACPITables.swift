import Memory

/// The ACPI tables for one VM, laid out from `base` (inside the BIOS area, where a kernel
/// without EFI looks for the RSDP): RSDP, XSDT, a hardware-reduced FADT, the MADT and the
/// DSDT. Tables sit 16-byte aligned, one after another.
public struct ACPITables: Sendable {
    public struct Table: Sendable {
        public let signature: String
        public let address: UInt64
        public let bytes: [UInt8]
    }

    static let fadtSize = 276

    public let base: UInt64
    /// RSDP first, then the tables in the order they are laid out.
    public let tables: [Table]

    /// The RSDP's address, for `boot_params.acpi_rsdp_addr` and the PVH start info.
    public var rsdpAddress: UInt64 { base }

    /// The tables for `platform` with the RSDP at `base` (MemoryMap.acpiTables: the BIOS
    /// area a kernel without EFI scans).
    public init(_ platform: ACPIPlatform, at base: GuestAddress = MemoryMap.acpiTables) {
        self.base = base.rawValue
        let dsdt = SystemDescriptionTable(signature: "DSDT", revision: 2, body: Self.dsdtBody(platform)).bytes
        let madt = SystemDescriptionTable(signature: "APIC", revision: 5, body: Self.madtBody(platform)).bytes
        let rsdpSize = 36
        let xsdtSize = SystemDescriptionTable.headerSize + 2 * 8
        let xsdtAddress = Self.aligned(self.base + UInt64(rsdpSize))
        let fadtAddress = Self.aligned(xsdtAddress + UInt64(xsdtSize))
        let madtAddress = Self.aligned(fadtAddress + UInt64(Self.fadtSize))
        let dsdtAddress = Self.aligned(madtAddress + UInt64(madt.count))
        var xsdtBody: [UInt8] = []
        xsdtBody.appendLittleEndian(fadtAddress)
        xsdtBody.appendLittleEndian(madtAddress)
        tables = [
            Table(signature: "RSD PTR ", address: self.base, bytes: Self.rsdp(xsdt: xsdtAddress)),
            Table(signature: "XSDT", address: xsdtAddress,
                  bytes: SystemDescriptionTable(signature: "XSDT", revision: 1, body: xsdtBody).bytes),
            Table(signature: "FACP", address: fadtAddress,
                  bytes: SystemDescriptionTable(signature: "FACP", revision: 6, body: Self.fadtBody(platform, dsdt: dsdtAddress)).bytes),
            Table(signature: "APIC", address: madtAddress, bytes: madt),
            Table(signature: "DSDT", address: dsdtAddress, bytes: dsdt),
        ]
        precondition(dsdtAddress + UInt64(dsdt.count) <= MemoryMap.reservedLow.upperBound + 1,
                     "the ACPI tables outgrew the BIOS area")
    }

    /// Every table in place, from `base` to the end of the last: what goes into guest memory.
    public var image: [UInt8] {
        guard let last = tables.last else { return [] }
        var image = [UInt8](repeating: 0, count: Int(last.address - base) + last.bytes.count)
        for table in tables {
            let offset = Int(table.address - base)
            image.replaceSubrange(offset..<(offset + table.bytes.count), with: table.bytes)
        }
        return image
    }

    /// Root System Description Pointer, revision 2: points at the XSDT only.
    static func rsdp(xsdt: UInt64) -> [UInt8] {
        var bytes = Array("RSD PTR ".utf8)
        bytes.append(0) // checksum of the first 20 bytes
        bytes += Array(SystemDescriptionTable.oemID.utf8)
        bytes.append(2)
        bytes.appendLittleEndian(UInt32(0)) // no RSDT
        bytes.appendLittleEndian(UInt32(36))
        bytes.appendLittleEndian(xsdt)
        bytes.append(0) // extended checksum, of all 36 bytes
        bytes += [0, 0, 0]
        bytes[8] = checksum(Array(bytes[0..<20]))
        bytes[32] = checksum(bytes)
        return bytes
    }

    /// Fixed ACPI Description Table, ACPI 6.5 layout (276 bytes). Hardware-reduced: no PM
    /// timer, no SCI, no fixed-feature registers; S5 and reset go through the
    /// sleep control and reset registers, in I/O space.
    static func fadtBody(_ platform: ACPIPlatform, dsdt: UInt64) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: fadtSize - SystemDescriptionTable.headerSize)
        func put<T: FixedWidthInteger>(_ value: T, at tableOffset: Int) {
            body.storeLittleEndian(value, at: tableOffset - SystemDescriptionTable.headerSize)
        }
        func putRegister(port: UInt16, at tableOffset: Int) {
            // Generic Address Structure: system I/O, 8 bits at bit 0, byte access.
            put(UInt8(1), at: tableOffset)
            put(UInt8(8), at: tableOffset + 1)
            put(UInt8(0), at: tableOffset + 2)
            put(UInt8(1), at: tableOffset + 3)
            put(UInt64(port), at: tableOffset + 4)
        }
        let noVGA: UInt16 = 1 << 2, noCMOSClock: UInt16 = 1 << 5
        put(noVGA | noCMOSClock, at: 109) // IA-PC boot architecture flags
        let wbinvd: UInt32 = 1 << 0, powerButtonAbsent: UInt32 = 1 << 4, sleepButtonAbsent: UInt32 = 1 << 5
        let resetRegisterSupported: UInt32 = 1 << 10, hardwareReduced: UInt32 = 1 << 20
        put(wbinvd | powerButtonAbsent | sleepButtonAbsent | resetRegisterSupported | hardwareReduced, at: 112)
        putRegister(port: platform.power.reset, at: 116)
        put(platform.power.resetValue, at: 128)
        put(UInt8(5), at: 131) // FADT minor version: ACPI 6.5
        put(dsdt, at: 140) // X_DSDT
        putRegister(port: platform.power.sleepControl, at: 244)
        putRegister(port: platform.power.sleepStatus, at: 256)
        let vendor = Array("MICROVM".utf8) + [0] // hypervisor vendor identity
        body.replaceSubrange((268 - SystemDescriptionTable.headerSize)..<(276 - SystemDescriptionTable.headerSize), with: vendor)
        return body
    }

    /// Multiple APIC Description Table: a local APIC per CPU, the IOAPIC with GSIs from 0,
    /// the timer's interrupt source override and LINT1 as NMI on every CPU.
    static func madtBody(_ platform: ACPIPlatform) -> [UInt8] {
        var body: [UInt8] = []
        body.appendLittleEndian(platform.localAPICAddress)
        body.appendLittleEndian(UInt32(1)) // PCAT_COMPAT: there are 8259 PICs too
        for cpu in 0..<platform.cpus {
            body += [0, 8, UInt8(cpu), UInt8(cpu)] // processor UID = APIC ID = index
            body.appendLittleEndian(UInt32(1)) // enabled
        }
        body += [1, 12, platform.ioAPICID, 0]
        body.appendLittleEndian(platform.ioAPICAddress)
        body.appendLittleEndian(UInt32(0)) // GSI base
        // KVM wires the PIT to IOAPIC pin 0, where PC firmware reports pin 2: say so.
        body += [2, 10, 0, 0]
        body.appendLittleEndian(UInt32(0))
        body.appendLittleEndian(UInt16(0)) // bus-conforming polarity and trigger
        body += [4, 6, 0xff] // local APIC NMI, all processors
        body.appendLittleEndian(UInt16(0))
        body.append(1) // LINT1
        return body
    }

    /// Differentiated System Description Table: COM1, each virtio-mmio slot and the
    /// generation ID's two devices under `\_SB`, and the S5 sleep type.
    static func dsdtBody(_ platform: ACPIPlatform) -> [UInt8] {
        var devices: [AMLTerm] = []
        if let serial = platform.serial {
            devices.append(AML.Device("COM1", [
                AML.Name("_HID", .eisaID("PNP0501")),
                AML.Name("_UID", .integer(1)),
                AML.Name("_CRS", .resources([.ioPorts(base: serial.port, count: 8), .isaInterrupt(serial.irq)])),
            ]))
        }
        for (index, device) in platform.virtioDevices.enumerated() {
            precondition(index < 256, "at most 256 virtio devices are named VR00–VRFF")
            let hex = String(index, radix: 16, uppercase: true)
            devices.append(AML.Device("VR" + (hex.count < 2 ? "0" + hex : hex), [
                AML.Name("_HID", .string("LNRO0005")),
                AML.Name("_UID", .integer(UInt64(index))),
                // ISA lines, edge-triggered as the MP table has them for the command-line path.
                AML.Name("_CRS", .resources([
                    .memory32Fixed(base: UInt32(device.address), length: device.size),
                    .interrupt(gsi: device.gsi, edgeTriggered: true),
                ])),
            ]))
        }
        devices += Self.generationIDDevices(platform.generationID)
        let s5 = AML.Name("\\_S5", .package([.integer(UInt64(platform.power.softOffSleepType)), .integer(0), .integer(0), .integer(0)]))
        return AML.Scope("\\_SB", devices).aml + s5.aml
    }

    /// `VGEN`, which Linux's vmgenid driver binds by its `_CID` (Linux 6.1 matches
    /// "VM_GEN_COUNTER" exactly; Microsoft's specification spells it "VM_Gen_Counter", and
    /// ACPICA upper-cases IDs before drivers see them) and reads the ID's address from with
    /// `ADDR`; and `GED`, whose one interrupt runs `_EVT`, which notifies `VGEN` that the ID
    /// changed (0x80): the driver then reads the new one and reseeds the guest's RNG.
    static func generationIDDevices(_ generationID: ACPIPlatform.GenerationID) -> [AMLTerm] {
        let vgen = AML.Device("VGEN", [
            // An ACPI ID of our own (four letters, four hex digits): Linux binds none by it.
            AML.Name("_HID", .string("MCVM0001")),
            AML.Name("_CID", .string("VM_GEN_COUNTER")),
            AML.Name("_DDN", .string("VM_Gen_Counter")),
            AML.Method("ADDR", [AML.Return(.package([.integer(generationID.address & 0xffff_ffff), .integer(generationID.address >> 32)]))]),
        ])
        let ged = AML.Device("GED", [
            AML.Name("_HID", .string("ACPI0013")),
            // Edge-triggered: the VMM pulses the line, and there is no status register to clear.
            AML.Name("_CRS", .resources([.interrupt(gsi: generationID.gsi, edgeTriggered: true)])),
            AML.Method("_EVT", arguments: 1, [
                AML.If(AML.Equal(AML.Argument(0), AMLData.integer(UInt64(generationID.gsi))), [AML.Notify("\\_SB.VGEN", 0x80)]),
            ]),
        ])
        return [vgen, ged]
    }

    static func aligned(_ address: UInt64) -> UInt64 { (address + 15) & ~15 }

    /// The byte that makes all bytes sum to zero.
    static func checksum(_ bytes: [UInt8]) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }
}
