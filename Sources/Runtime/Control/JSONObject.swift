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
        case .number(let number):
            return number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        }
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
        var parser = Parser(bytes: Array(text))
        return try parser.object()
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func object() throws(ParseError) -> JSONObject {
            skipSpace()
            try expect(UInt8(ascii: "{"))
            var result = JSONObject()
            skipSpace()
            if peek == UInt8(ascii: "}") {
                index += 1
            } else {
                while true {
                    skipSpace()
                    let key = try string()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    result.set(key, try value())
                    skipSpace()
                    if peek == UInt8(ascii: ",") {
                        index += 1
                        continue
                    }
                    try expect(UInt8(ascii: "}"))
                    break
                }
            }
            skipSpace()
            guard index == bytes.count else { throw ParseError(description: "text after the object") }
            return result
        }

        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d { index += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(ParseError) {
            guard peek == byte else {
                throw ParseError(description: "expected '\(Character(Unicode.Scalar(byte)))' at byte \(index)")
            }
            index += 1
        }

        mutating func value() throws(ParseError) -> Value {
            switch peek {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try word("true"); return .bool(true)
            case UInt8(ascii: "f"): try word("false"); return .bool(false)
            case UInt8(ascii: "n"): try word("null"); return .null
            case UInt8(ascii: "{"), UInt8(ascii: "["): throw ParseError(description: "nested objects and arrays are not part of the protocol")
            default: return .number(try number())
            }
        }

        mutating func word(_ text: String) throws(ParseError) {
            for byte in text.utf8 { try expect(byte) }
        }

        mutating func number() throws(ParseError) -> Double {
            let start = index
            while let byte = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "+-.eE".utf8.contains(byte) { index += 1 }
            guard index > start, let text = String(validating: bytes[start..<index], as: UTF8.self), let number = Double(text),
                  number.isFinite else {
                throw ParseError(description: "bad value at byte \(start)")
            }
            return number
        }

        mutating func string() throws(ParseError) -> String {
            try expect(UInt8(ascii: "\""))
            var scalars = String.UnicodeScalarView()
            var raw: [UInt8] = []
            func flush() throws(ParseError) {
                guard let text = String(validating: raw, as: UTF8.self) else { throw ParseError(description: "a string is not UTF-8") }
                scalars.append(contentsOf: text.unicodeScalars)
                raw.removeAll()
            }
            while true {
                guard let byte = peek else { throw ParseError(description: "unterminated string") }
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    try flush()
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    try flush()
                    guard let escaped = peek else { throw ParseError(description: "unterminated string") }
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(Unicode.Scalar(escaped))
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "b"): scalars.append("\u{8}")
                    case UInt8(ascii: "f"): scalars.append("\u{c}")
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count, let code = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16),
                              let scalar = Unicode.Scalar(code) else {
                            throw ParseError(description: "bad \\u escape at byte \(index)")
                        }
                        index += 4
                        scalars.append(scalar)
                    default: throw ParseError(description: "bad escape at byte \(index - 1)")
                    }
                case 0..<0x20:
                    throw ParseError(description: "control character in a string at byte \(index - 1)")
                default:
                    raw.append(byte)
                }
            }
        }
    }
}
