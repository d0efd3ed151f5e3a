import Memory

/// Little-endian reading of a 9P message, every length checked against what is left.
struct NinePReader {
    private let bytes: [UInt8]
    private(set) var position: Int

    init(_ bytes: [UInt8], position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    var remaining: Int { bytes.count - position }

    mutating func integer<T: FixedWidthInteger>(_ type: T.Type = T.self) throws(NinePCodecError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated }
        var value: T = 0
        for index in 0..<size { value |= T(bytes[position + index]) << (8 * index) }
        position += size
        return value
    }

    /// A string: a 16-bit length and that many bytes of UTF-8.
    mutating func string() throws(NinePCodecError) -> String {
        let count = Int(try integer(UInt16.self))
        guard remaining >= count else { throw .truncated }
        let slice = bytes[position..<(position + count)]
        position += count
        guard let string = String(validating: slice, as: UTF8.self) else { throw .invalidString }
        return string
    }

    mutating func qid() throws(NinePCodecError) -> NineP.Qid {
        NineP.Qid(type: try integer(), version: try integer(), path: try integer())
    }

    mutating func data(_ count: Int) throws(NinePCodecError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }
}

/// Little-endian building of a 9P message; `finish` writes the size field.
struct NinePWriter {
    private(set) var bytes: [UInt8] = []

    init(type: UInt8, tag: UInt16) {
        bytes.reserveCapacity(64)
        integer(UInt32(0))
        integer(type)
        integer(tag)
    }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        for index in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }

    /// Strings longer than a 16-bit length are cut: names and targets stay far below it.
    mutating func string(_ string: String) {
        let utf8 = string.utf8.prefix(Int(UInt16.max))
        integer(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func qid(_ qid: NineP.Qid) {
        integer(qid.type)
        integer(qid.version)
        integer(qid.path)
    }

    mutating func data(_ data: [UInt8]) {
        bytes.append(contentsOf: data)
    }

    /// The message with its size field set; `trailing` bytes follow it outside `bytes`
    /// (a read's data, placed straight into the guest's buffers).
    func finish(trailing: Int = 0) -> [UInt8] {
        var message = bytes
        message.storeLittleEndian(UInt32(message.count + trailing), at: 0)
        return message
    }
}

/// Why a message could not be parsed. The server answers with the errno it maps to.
public enum NinePCodecError: Error, Equatable, Sendable {
    /// Fewer bytes than the fields need, or fewer than the size field says.
    case truncated
    /// The size field says more than the negotiated msize, or more than arrived.
    case oversized(size: Int, limit: Int)
    case unknownType(UInt8)
    case invalidString
    /// More names in one walk than 9P allows (16).
    case tooManyNames(Int)

    /// The Linux errno an Rlerror carries for it.
    public var errno: UInt32 {
        switch self {
        case .truncated, .tooManyNames: return NineP.Errno.invalid
        case .oversized: return NineP.Errno.messageTooLong
        case .unknownType: return NineP.Errno.notSupported
        case .invalidString: return NineP.Errno.illegalSequence
        }
    }
}
