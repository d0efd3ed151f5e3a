/// A JSON document of any shape, as microvm-oci's files are: `config.json` in, `state`
/// out (the control socket's lines are the flat `JSONObject`). The parser takes any JSON
/// value up to `maximumDepth` levels of nesting, so that a hostile file costs time and
/// memory in proportion to its size and no more.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static let maximumDepth = 64

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.elementsEqual(b) { $0.key == $1.key && $0.value == $1.value }
        default: false
        }
    }

    /// The member `key` of an object (the last one, when a key repeats); nil otherwise.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.last { $0.key == key }?.value
    }

    public typealias ParseError = JSONObject.ParseError

    /// Parses a whole document; anything but white space after the value is an error.
    public static func parse(_ bytes: some Collection<UInt8>) throws(ParseError) -> JSONValue {
        var scanner = JSONScanner(bytes)
        let value = try value(&scanner, depth: 0)
        scanner.skipSpace()
        guard scanner.atEnd else { throw scanner.error("text after the JSON value") }
        return value
    }

    /// The value on one line, members in order.
    public var encoded: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .number(let number): return JSONObject.encode(number: number)
        case .string(let text): return JSONObject.quote(text)
        case .array(let items): return "[" + items.map(\.encoded).joined(separator: ",") + "]"
        case .object(let members): return "{" + members.map { JSONObject.quote($0.key) + ":" + $0.value.encoded }.joined(separator: ",") + "}"
        }
    }

    private static func value(_ scanner: inout JSONScanner, depth: Int) throws(ParseError) -> JSONValue {
        guard depth < maximumDepth else { throw scanner.error("more than \(maximumDepth) levels of nesting") }
        scanner.skipSpace()
        switch scanner.peek {
        case nil:
            throw scanner.error("the document ends where a value should be")
        case UInt8(ascii: "{"):
            scanner.index += 1
            var members: [(key: String, value: JSONValue)] = []
            scanner.skipSpace()
            if scanner.peek == UInt8(ascii: "}") {
                scanner.index += 1
                return .object(members)
            }
            while true {
                scanner.skipSpace()
                guard scanner.peek == UInt8(ascii: "\"") else { throw scanner.error("expected a member name") }
                let key = try scanner.string()
                scanner.skipSpace()
                try scanner.expect(UInt8(ascii: ":"))
                members.append((key, try value(&scanner, depth: depth + 1)))
                scanner.skipSpace()
                if scanner.peek == UInt8(ascii: "}") {
                    scanner.index += 1
                    return .object(members)
                }
                try scanner.expect(UInt8(ascii: ","))
            }
        case UInt8(ascii: "["):
            scanner.index += 1
            var items: [JSONValue] = []
            scanner.skipSpace()
            if scanner.peek == UInt8(ascii: "]") {
                scanner.index += 1
                return .array(items)
            }
            while true {
                items.append(try value(&scanner, depth: depth + 1))
                scanner.skipSpace()
                if scanner.peek == UInt8(ascii: "]") {
                    scanner.index += 1
                    return .array(items)
                }
                try scanner.expect(UInt8(ascii: ","))
            }
        case UInt8(ascii: "\""): return .string(try scanner.string())
        case UInt8(ascii: "t"): try scanner.literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try scanner.literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try scanner.literal("null"); return .null
        default: return .number(try scanner.number())
        }
    }
}
