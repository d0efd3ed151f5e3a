/// Writes a device's saved state: little-endian integers, booleans as one byte, and
/// byte strings behind a 32-bit length. Each device writes its fields in a fixed order
/// and reads them back in the same order with `StateReader`.
public struct StateWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }

    public mutating func put(_ value: Bool) {
        bytes.append(value ? 1 : 0)
    }

    public mutating func put(bytes value: some Collection<UInt8>) {
        put(UInt32(value.count))
        bytes += value
    }

    public mutating func put(_ value: String) {
        put(bytes: Array(value.utf8))
    }
}

/// What a saved state that cannot be put back looks like.
public enum StateError: Error, Equatable, CustomStringConvertible {
    /// The state ended before a field the reader expected.
    case truncated(what: String)
    /// A field holds a value the device could never have saved.
    case invalid(what: String)
    /// The state refers to something the restoring device was not given (a 9p export not bound).
    case missing(what: String)

    public var description: String {
        switch self {
        case .truncated(let what): "saved state ends inside \(what)"
        case .invalid(let what): "saved \(what) is not valid"
        case .missing(let what): "saved state refers to \(what), which this device does not have"
        }
    }
}

/// Reads what a `StateWriter` wrote. Every read is checked against the bytes left and
/// every length against a limit the caller gives, so damaged state throws, never traps.
public struct StateReader: Sendable {
    private let bytes: [UInt8]
    private var offset = 0

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    public var isAtEnd: Bool { offset == bytes.count }

    public mutating func get<T: FixedWidthInteger>(_ type: T.Type = T.self, _ what: String) throws(StateError) -> T {
        let size = MemoryLayout<T>.size
        guard bytes.count - offset >= size else { throw .truncated(what: what) }
        defer { offset += size }
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    public mutating func bool(_ what: String) throws(StateError) -> Bool {
        switch try get(UInt8.self, what) {
        case 0: return false
        case 1: return true
        default: throw .invalid(what: what)
        }
    }

    public mutating func bytes(_ what: String, limit: Int) throws(StateError) -> [UInt8] {
        let count = Int(try get(UInt32.self, what))
        guard count <= limit else { throw .invalid(what: what) }
        guard bytes.count - offset >= count else { throw .truncated(what: what) }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    public mutating func string(_ what: String, limit: Int) throws(StateError) -> String {
        let raw = try bytes(what, limit: limit)
        guard let value = String(validating: raw, as: UTF8.self) else { throw .invalid(what: what) }
        return value
    }

    /// Checks that nothing is left: state longer than its device wrote is not its state.
    public func finish(_ what: String) throws(StateError) {
        guard isAtEnd else { throw .invalid(what: what) }
    }
}

/// A device whose state a snapshot carries. `restoreState` runs on a device built with
/// the same configuration, before any vCPU runs, and throws on state it could not have saved.
public protocol StatefulDevice: AnyObject {
    func saveState(into writer: inout StateWriter)
    func restoreState(from reader: inout StateReader) throws(StateError)
}
