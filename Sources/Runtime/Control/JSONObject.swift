/// One JSON object with scalar members, the shape of every control request and answer
/// (docs/control-api.md). Nested arrays and objects are refused: the protocol has none,
/// and refusing them keeps parsing a loop over one line with no recursion.
public struct JSONObject: Equatable, Sendable {
    public enum Value: Equatable, Sendable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case null
    }

    public private(set) var members: [(key: String, value: Value)] = []

    public init(_ members: [(String, Value)] = []) {
        self.members = members.map { (key: $0.0, value: $0.1) }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.key == $1.key && $0.value == $1.value }
    }

    public subscript(key: String) -> Value? {
        members.last { $0.key == key }?.value
    }

    public mutating func set(_ key: String, _ value: Value) {
        members.removeAll { $0.key == key }
        members.append((key: key, value: value))
    }

    /// The object on one line, without a newline.
    public var encoded: String {
        "{" + members.map { Self.quote($0.key) + ":" + Self.encode($0.value) }.joined(separator: ",") + "}"
    }

    private static func encode(_ value: Value) -> String {
        switch value {
        case .string(let text): return quote(text)
        case .number(let number): return encode(number: number)
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        }
    }

    /// A whole number without a fraction (as JSON writers commonly print one), else Swift's shortest form.
    static func encode(number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }

    /// `text` as a JSON string literal, with the quotes.
    public static func quote(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    /// Parses one object from `text`, which must hold nothing else but white space.
    public static func parse(_ text: some Collection<UInt8>) throws(ParseError) -> JSONObject {
        var scanner = JSONScanner(text)
        scanner.skipSpace()
        try scanner.expect(UInt8(ascii: "{"))
        var result = JSONObject()
        scanner.skipSpace()
        if scanner.peek == UInt8(ascii: "}") {
            scanner.index += 1
        } else {
            while true {
                scanner.skipSpace()
                let key = try scanner.string()
                scanner.skipSpace()
                try scanner.expect(UInt8(ascii: ":"))
                scanner.skipSpace()
                result.set(key, try value(&scanner))
                scanner.skipSpace()
                if scanner.peek == UInt8(ascii: ",") {
                    scanner.index += 1
                    continue
                }
                try scanner.expect(UInt8(ascii: "}"))
                break
            }
        }
        scanner.skipSpace()
        guard scanner.atEnd else { throw ParseError(description: "text after the object") }
        return result
    }

    private static func value(_ scanner: inout JSONScanner) throws(ParseError) -> Value {
        switch scanner.peek {
        case UInt8(ascii: "\""): return .string(try scanner.string())
        case UInt8(ascii: "t"): try scanner.literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try scanner.literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try scanner.literal("null"); return .null
        case UInt8(ascii: "{"), UInt8(ascii: "["): throw ParseError(description: "nested objects and arrays are not part of the protocol")
        default: return .number(try scanner.number())
        }
    }
}
