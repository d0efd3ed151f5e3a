/// The tokens of JSON text, for both parsers: `JSONObject` (one flat control line) and
/// `JSONValue` (whole documents). White space, expected bytes, literals, numbers and
/// strings; each error names the byte where it was found.
struct JSONScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: some Collection<UInt8>) {
        self.bytes = Array(bytes)
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
    var atEnd: Bool { index == bytes.count }

    func error(_ what: String) -> JSONObject.ParseError {
        JSONObject.ParseError(description: "\(what) at byte \(index)")
    }

    mutating func skipSpace() {
        while let byte = peek, byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d { index += 1 }
    }

    mutating func expect(_ byte: UInt8) throws(JSONObject.ParseError) {
        guard peek == byte else { throw error("expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    /// `true`, `false` or `null`.
    mutating func literal(_ word: String) throws(JSONObject.ParseError) {
        for byte in word.utf8 { try expect(byte) }
    }

    mutating func number() throws(JSONObject.ParseError) -> Double {
        let start = index
        while let byte = peek, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "+-.eE".utf8.contains(byte) { index += 1 }
        guard index > start, let text = String(validating: bytes[start..<index], as: UTF8.self), let number = Double(text),
              number.isFinite else {
            index = start
            throw error("bad value")
        }
        return number
    }

    /// A string from its opening quote on: escapes resolved (surrogate pairs joined),
    /// control characters and text that is not UTF-8 refused.
    mutating func string() throws(JSONObject.ParseError) -> String {
        try expect(UInt8(ascii: "\""))
        var scalars = String.UnicodeScalarView()
        var run: [UInt8] = []
        func flush() throws(JSONObject.ParseError) {
            guard !run.isEmpty else { return }
            guard let text = String(validating: run, as: UTF8.self) else { throw error("a string that is not UTF-8") }
            scalars.append(contentsOf: text.unicodeScalars)
            run.removeAll(keepingCapacity: true)
        }
        while let byte = peek {
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                try flush()
                return String(scalars)
            case UInt8(ascii: "\\"):
                try flush()
                guard let escape = peek else { throw error("an unterminated string") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalars.append(Unicode.Scalar(escape))
                case UInt8(ascii: "b"): scalars.append("\u{8}")
                case UInt8(ascii: "f"): scalars.append("\u{c}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xd800..<0xdc00).contains(code), bytes.count - index >= 6,
                       bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                        index += 2
                        let low = try hex4()
                        guard (0xdc00..<0xe000).contains(low) else { throw error("a lone surrogate") }
                        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw error("a lone surrogate") }
                    scalars.append(scalar)
                default: throw error("a bad escape")
                }
            case 0..<0x20:
                throw error("a control character in a string")
            default:
                run.append(byte)
            }
        }
        throw error("an unterminated string")
    }

    private mutating func hex4() throws(JSONObject.ParseError) -> UInt32 {
        guard bytes.count - index >= 4, let text = String(validating: bytes[index..<(index + 4)], as: UTF8.self),
              let code = UInt32(text, radix: 16) else { throw error("a bad \\u escape") }
        index += 4
        return code
    }
}
