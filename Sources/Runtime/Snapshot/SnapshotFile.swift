import Devices

/// The snapshot's state file as bytes (docs/snapshots.md): a 16-byte magic, a 32-bit
/// format version, a 32-bit section count, the sections (a 4-byte ASCII tag, a 64-bit
/// length, the payload), and a CRC-32 of everything before it. Integers are little-endian.
/// A small explicit layout rather than a kept library: the content is a few raw KVM
/// structs and device registers, and every byte of it is checked before use.
struct SnapshotFile: Equatable {
    static let magic = Array("microvm-snapshot".utf8)
    static let version: UInt32 = 5
    /// No section of ours comes near it; a larger length is damage, not data.
    static let maximumSectionLength = 64 << 20
    static let maximumSections = 1024

    struct Section: Equatable {
        let tag: String
        let payload: [UInt8]
    }

    var sections: [Section] = []

    mutating func append(_ tag: String, _ payload: [UInt8]) {
        precondition(tag.utf8.count == 4, "section tags are four ASCII bytes")
        sections.append(Section(tag: tag, payload: payload))
    }

    func encoded() -> [UInt8] {
        var writer = StateWriter()
        for byte in Self.magic { writer.put(byte) }
        writer.put(Self.version)
        writer.put(UInt32(sections.count))
        for section in sections {
            for byte in section.tag.utf8 { writer.put(byte) }
            writer.put(UInt64(section.payload.count))
            for byte in section.payload { writer.put(byte) }
        }
        writer.put(CRC32.checksum(writer.bytes))
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8]) throws(SnapshotError) -> SnapshotFile {
        guard bytes.count >= magic.count + 8 + 4, Array(bytes.prefix(magic.count)) == magic else { throw .notASnapshot }
        let version = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: magic.count, as: UInt32.self)) }
        guard version == Self.version else { throw .version(found: version, expected: Self.version) }
        let body = bytes.dropLast(4)
        let stored = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: bytes.count - 4, as: UInt32.self)) }
        guard CRC32.checksum(body) == stored else { throw .checksum }
        var offset = magic.count + 4
        func integer<T: FixedWidthInteger>(_ type: T.Type) throws(SnapshotError) -> T {
            guard body.count - offset >= MemoryLayout<T>.size else { throw .truncated }
            defer { offset += MemoryLayout<T>.size }
            return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        let count = Int(try integer(UInt32.self))
        guard count <= maximumSections else { throw .malformed("\(count) sections") }
        var file = SnapshotFile()
        for _ in 0..<count {
            guard body.count - offset >= 4 else { throw .truncated }
            let tag = String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self)
            offset += 4
            let length = try integer(UInt64.self)
            guard length <= UInt64(maximumSectionLength) else { throw .malformed("section \(tag) of \(length) bytes") }
            guard body.count - offset >= Int(length) else { throw .truncated }
            file.sections.append(Section(tag: tag, payload: Array(bytes[offset..<(offset + Int(length))])))
            offset += Int(length)
        }
        guard offset == body.count else { throw .malformed("bytes after the last section") }
        return file
    }

    /// The payloads under `tag`, in file order.
    func payloads(_ tag: String) -> [[UInt8]] {
        sections.filter { $0.tag == tag }.map(\.payload)
    }
}

/// CRC-32 (the IEEE polynomial, as zlib and gzip use), to tell a damaged file from a good one.
enum CRC32 {
    private static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xedb8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return crc ^ 0xffff_ffff
    }
}
