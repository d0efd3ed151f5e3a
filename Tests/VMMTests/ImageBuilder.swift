@testable import Memory

/// Crafts kernel images byte by byte, so loader tests need no real kernel.
enum ImageBuilder {
    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        bytes.storeLittleEndian(value, at: offset)
    }

    /// A bzImage with one setup sector and `payload` as its protected-mode part.
    static func bzImage(payload: [UInt8] = [UInt8](repeating: 0x90, count: 0x400), version: UInt16 = 0x020f,
                        xloadFlags: UInt16 = 0x3, initSize: UInt32 = 0x1000, commandLineSize: UInt32 = 2047) -> [UInt8] {
        var image = [UInt8](repeating: 0, count: 0x400)
        image[0x1f1] = 1
        put(UInt16(0xaa55), at: 0x1fe, in: &image)
        image[0x200] = 0xeb
        image[0x201] = 0x6a
        put(UInt32(0x5372_6448), at: 0x202, in: &image)
        put(version, at: 0x206, in: &image)
        image[0x211] = 0x01
        put(UInt32(0x7fff_ffff), at: 0x22c, in: &image)
        put(UInt32(0x20_0000), at: 0x230, in: &image)
        image[0x234] = 1
        put(xloadFlags, at: 0x236, in: &image)
        put(commandLineSize, at: 0x238, in: &image)
        put(UInt64(0x10_0000), at: 0x258, in: &image)
        put(initSize, at: 0x260, in: &image)
        return image + payload
    }

    struct Segment {
        var type: UInt32 = 1
        var physical: UInt64
        var virtual: UInt64? = nil
        var data: [UInt8]
        var memorySize: UInt64? = nil
    }

    /// An ELF64 executable with the given segments (contents appended after the headers).
    static func elf(segments: [Segment], entry: UInt64 = 0x100000, machine: UInt16 = 62, elfClass: UInt8 = 2) -> [UInt8] {
        let headerSize = 64
        let programHeaderSize = 56
        var image = [UInt8](repeating: 0, count: headerSize + programHeaderSize * segments.count)
        image.replaceSubrange(0..<4, with: [0x7f, 0x45, 0x4c, 0x46])
        image[4] = elfClass
        image[5] = 1
        image[6] = 1
        put(UInt16(2), at: 16, in: &image)
        put(machine, at: 18, in: &image)
        put(UInt32(1), at: 20, in: &image)
        put(entry, at: 24, in: &image)
        put(UInt64(headerSize), at: 32, in: &image)
        put(UInt16(headerSize), at: 52, in: &image)
        put(UInt16(programHeaderSize), at: 54, in: &image)
        put(UInt16(segments.count), at: 56, in: &image)
        for (index, segment) in segments.enumerated() {
            let base = headerSize + index * programHeaderSize
            let offset = image.count
            image += segment.data
            put(segment.type, at: base, in: &image)
            put(UInt64(offset), at: base + 8, in: &image)
            put(segment.virtual ?? segment.physical, at: base + 16, in: &image)
            put(segment.physical, at: base + 24, in: &image)
            put(UInt64(segment.data.count), at: base + 32, in: &image)
            put(segment.memorySize ?? UInt64(segment.data.count), at: base + 40, in: &image)
        }
        return image
    }

    /// A Xen PVH entry note with an 8-byte descriptor, as Linux writes it.
    static func pvhNote(entry: UInt64) -> [UInt8] {
        var note = [UInt8](repeating: 0, count: 12)
        put(UInt32(4), at: 0, in: &note)
        put(UInt32(8), at: 4, in: &note)
        put(UInt32(18), at: 8, in: &note)
        note += Array("Xen\0".utf8)
        var descriptor = [UInt8](repeating: 0, count: 8)
        put(entry, at: 0, in: &descriptor)
        return note + descriptor
    }
}
