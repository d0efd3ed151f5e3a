import Memory

/// A piece of AML (ACPI Machine Language, ACPI 6.5 chapter 20), the bytecode of a DSDT.
/// Terms are values that append their encoding; a table's body is a list of them.
public protocol AMLTerm: Sendable {
    func append(to aml: inout [UInt8])
}

extension AMLTerm {
    /// The term's bytecode.
    public var aml: [UInt8] {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return bytes
    }
}

/// The data objects a `Name` can hold or a `Method` can return.
public enum AMLData: AMLTerm, Sendable {
    /// The shortest integer encoding (ZeroOp, OneOp, Byte/Word/DWord/QWordConst).
    case integer(UInt64)
    /// A NUL-terminated ASCII string.
    case string(String)
    /// A PNP ID such as "PNP0501" compressed to 32 bits, as ASL's `EisaId()`.
    case eisaID(String)
    case package([AMLData])
    /// A buffer holding resource descriptors, as ASL's `ResourceTemplate()`.
    case resources([ResourceDescriptor])

    public func append(to aml: inout [UInt8]) {
        switch self {
        case .integer(let value):
            switch value {
            case 0: aml.append(0x00)
            case 1: aml.append(0x01)
            case ...0xff: aml += [0x0a, UInt8(value)]
            case ...0xffff: aml.append(0x0b); aml.appendLittleEndian(UInt16(value))
            case ...0xffff_ffff: aml.append(0x0c); aml.appendLittleEndian(UInt32(value))
            default: aml.append(0x0e); aml.appendLittleEndian(value)
            }
        case .string(let text):
            precondition(text.utf8.allSatisfy { (0x01...0x7f).contains($0) }, "AML strings are ASCII without NUL")
            aml.append(0x0d)
            aml += text.utf8
            aml.append(0)
        case .eisaID(let id):
            aml.append(0x0c)
            aml.appendLittleEndian(Self.compressedEISAID(id))
        case .package(let elements):
            precondition(elements.count <= 255, "a Package holds at most 255 elements")
            var body: [UInt8] = [UInt8(elements.count)]
            for element in elements { element.append(to: &body) }
            aml.appendPackage(opcode: [0x12], body: body)
        case .resources(let descriptors):
            var template: [UInt8] = []
            for descriptor in descriptors { descriptor.append(to: &template) }
            // End tag; a zero checksum means "not checked" to every reader.
            template += [0x79, 0x00]
            var body: [UInt8] = []
            AMLData.integer(UInt64(template.count)).append(to: &body)
            aml.appendPackage(opcode: [0x11], body: body + template)
        }
    }

    /// Three letters of five bits each and four hex digits, stored so that the bytes read
    /// in the order the ID is written.
    static func compressedEISAID(_ id: String) -> UInt32 {
        let characters = Array(id.utf8)
        precondition(characters.count == 7 && characters[0..<3].allSatisfy { (0x41...0x5a).contains($0) },
                     "an EISA ID is three capital letters and four hex digits")
        var value: UInt32 = 0
        for letter in characters[0..<3] { value = value << 5 | UInt32(letter - 0x40) }
        for digit in characters[3..<7] {
            guard let nibble = UInt32(String(UnicodeScalar(digit)), radix: 16) else { preconditionFailure("bad hex digit in an EISA ID") }
            value = value << 4 | nibble
        }
        return value.byteSwapped
    }
}

/// The named objects and statements of a DSDT, as ASL writes them.
public enum AML {
    /// `Name(path, data)`: a named object in the namespace.
    public struct Name: AMLTerm {
        let path: String
        let data: AMLData

        public init(_ path: String, _ data: AMLData) {
            self.path = path
            self.data = data
        }

        public func append(to aml: inout [UInt8]) {
            aml.append(0x08)
            aml += NameString.encode(path)
            data.append(to: &aml)
        }
    }

    /// `Scope(path) { terms }`: opens an existing part of the namespace, such as `\_SB`.
    public struct Scope: AMLTerm {
        let path: String
        let terms: [AMLTerm]

        public init(_ path: String, _ terms: [AMLTerm]) {
            self.path = path
            self.terms = terms
        }

        public func append(to aml: inout [UInt8]) {
            aml.appendNamedBlock(opcode: [0x10], path: path, terms: terms)
        }
    }

    /// `Device(path) { terms }`: a device object, described by its `_HID`, `_UID`, `_CRS`.
    public struct Device: AMLTerm {
        let path: String
        let terms: [AMLTerm]

        public init(_ path: String, _ terms: [AMLTerm]) {
            self.path = path
            self.terms = terms
        }

        public func append(to aml: inout [UInt8]) {
            aml.appendNamedBlock(opcode: [0x5b, 0x82], path: path, terms: terms)
        }
    }

    /// `Method(path, arguments, NotSerialized) { terms }`.
    public struct Method: AMLTerm {
        let path: String
        let arguments: UInt8
        let terms: [AMLTerm]

        public init(_ path: String, arguments: UInt8 = 0, _ terms: [AMLTerm]) {
            precondition(arguments <= 7, "a method takes at most 7 arguments")
            self.path = path
            self.arguments = arguments
            self.terms = terms
        }

        public func append(to aml: inout [UInt8]) {
            aml.appendNamedBlock(opcode: [0x14], path: path, flags: [arguments], terms: terms)
        }
    }

    /// `Return(data)`.
    public struct Return: AMLTerm {
        let data: AMLData

        public init(_ data: AMLData) { self.data = data }

        public func append(to aml: inout [UInt8]) {
            aml.append(0xa4)
            data.append(to: &aml)
        }
    }
}

/// Name strings: `\` for the root, `^` for each parent, then 4-character segments
/// separated by dots (shorter ones padded with `_`).
enum NameString {
    static func encode(_ path: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = Substring(path)
        while let first = rest.first, first == "\\" || first == "^" {
            bytes.append(first == "\\" ? 0x5c : 0x5e)
            rest = rest.dropFirst()
        }
        let segments = rest.split(separator: ".", omittingEmptySubsequences: false).map(segment)
        switch segments.count {
        case 0: bytes.append(0x00)
        case 1: break
        case 2: bytes.append(0x2e)
        default:
            precondition(segments.count <= 255, "too many name segments")
            bytes += [0x2f, UInt8(segments.count)]
        }
        for segment in segments { bytes += segment }
        return bytes
    }

    private static func segment(_ text: Substring) -> [UInt8] {
        let characters = Array(text.utf8)
        let leadOK = characters.first.map { (0x41...0x5a).contains($0) || $0 == 0x5f } ?? false
        precondition(characters.count <= 4 && leadOK
            && characters.allSatisfy { (0x41...0x5a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5f },
            "an AML name segment is up to 4 of A-Z, 0-9 and _, not starting with a digit: \(text)")
        return characters + [UInt8](repeating: 0x5f, count: 4 - characters.count)
    }
}

extension Array where Element == UInt8 {
    /// `opcode PkgLength NameString flags TermList`: Scope, Device and Method.
    mutating func appendNamedBlock(opcode: [UInt8], path: String, flags: [UInt8] = [], terms: [AMLTerm]) {
        var body = NameString.encode(path) + flags
        for term in terms { term.append(to: &body) }
        appendPackage(opcode: opcode, body: body)
    }

    /// `opcode PkgLength body`: PkgLength counts its own bytes, in 1 to 4 of them.
    mutating func appendPackage(opcode: [UInt8], body: [UInt8]) {
        self += opcode
        if body.count + 1 < 0x40 {
            append(UInt8(body.count + 1))
        } else {
            var extra = 1
            while body.count + 1 + extra >= 1 << (4 + 8 * extra) { extra += 1 }
            precondition(extra <= 3, "an AML package is at most 256 MiB")
            let length = body.count + 1 + extra
            append(UInt8(extra << 6) | UInt8(length & 0xf))
            for index in 0..<extra { append(UInt8(truncatingIfNeeded: length >> (4 + 8 * index))) }
        }
        self += body
    }
}
