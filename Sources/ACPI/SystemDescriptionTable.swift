import Memory

/// A system description table: the 36-byte header every ACPI table but the RSDP starts
/// with (ACPI 6.5 section 5.2.6), then its body. `bytes` has the length and checksum set.
public struct SystemDescriptionTable: Sendable {
    static let headerSize = 36
    public static let oemID = "MICROV"
    public static let oemTableID = "MICROVM "

    public let signature: String
    public let revision: UInt8
    public let body: [UInt8]

    public init(signature: String, revision: UInt8, body: [UInt8]) {
        precondition(signature.utf8.count == 4, "a table signature is 4 characters")
        self.signature = signature
        self.revision = revision
        self.body = body
    }

    public var bytes: [UInt8] {
        var bytes = Array(signature.utf8)
        bytes.appendLittleEndian(UInt32(Self.headerSize + body.count))
        bytes.append(revision)
        bytes.append(0) // checksum, set below
        bytes += Array(Self.oemID.utf8)
        bytes += Array(Self.oemTableID.utf8)
        bytes.appendLittleEndian(UInt32(1)) // OEM revision
        bytes += Array("MVMM".utf8) // creator ID
        bytes.appendLittleEndian(UInt32(1)) // creator revision
        bytes += body
        bytes[9] = ACPITables.checksum(bytes)
        return bytes
    }
}
