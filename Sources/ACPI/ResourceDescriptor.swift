import Memory

/// The resource descriptors of a `_CRS` buffer (ACPI 6.5 section 6.4), the ones our
/// devices need.
public enum ResourceDescriptor: Sendable {
    /// `IO(Decode16, base, base, 1, length)`: a fixed range of I/O ports.
    case ioPorts(base: UInt16, count: UInt8)
    /// `IRQNoFlags() {irq}`: an ISA interrupt, edge-triggered and active high.
    case isaInterrupt(UInt8)
    /// `Memory32Fixed(ReadWrite, base, length)`.
    case memory32Fixed(base: UInt32, length: UInt32)
    /// `Interrupt(ResourceConsumer, Edge or Level, ActiveHigh, Exclusive) {gsi}`.
    case interrupt(gsi: UInt32, edgeTriggered: Bool)

    func append(to bytes: inout [UInt8]) {
        switch self {
        case .ioPorts(let base, let count):
            // Small item 0x08 (I/O port), 7 bytes: 16-bit decode, minimum = maximum = base.
            bytes += [0x47, 0x01]
            bytes.appendLittleEndian(base)
            bytes.appendLittleEndian(base)
            bytes += [0x01, count]
        case .isaInterrupt(let irq):
            precondition(irq < 16, "ISA interrupts are 0–15")
            // Small item 0x04 (IRQ), 2 bytes: the mask of lines, no flags byte (edge, high).
            bytes.append(0x22)
            bytes.appendLittleEndian(UInt16(1) << irq)
        case .memory32Fixed(let base, let length):
            // Large item 0x06, 9 bytes: read-write.
            bytes.append(0x86)
            bytes.appendLittleEndian(UInt16(9))
            bytes.append(0x01)
            bytes.appendLittleEndian(base)
            bytes.appendLittleEndian(length)
        case .interrupt(let gsi, let edgeTriggered):
            // Large item 0x09 (extended interrupt), 6 bytes for one interrupt: consumer,
            // active high, exclusive.
            bytes.append(0x89)
            bytes.appendLittleEndian(UInt16(6))
            bytes.append(0x01 | (edgeTriggered ? 0x02 : 0x00))
            bytes.append(1)
            bytes.appendLittleEndian(gsi)
        }
    }
}
