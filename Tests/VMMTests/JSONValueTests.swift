import Runtime
import Testing

struct JSONValueTests {
    @Test func parsesNestedDocuments() throws {
        let text = #" {"a": [1, -2.5e1, true, false, null], "b": {"c": "d\"\\\/\n\u00e9\ud83d\ude00"}, "e": []} "#
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(value["a"] == .array([.number(1), .number(-25), .bool(true), .bool(false), .null]))
        #expect(value["b"]?["c"] == .string("d\"\\/\né😀"))
        #expect(value["e"] == .array([]))
        #expect(value["missing"] == nil)
    }

    @Test func encodesWhatItParses() throws {
        let value = JSONValue.object([("k", .array([.string("a\u{1}\"b"), .number(3), .number(0.5)])), ("n", .null)])
        #expect(value.encoded == #"{"k":["a\u0001\"b",3,0.5],"n":null}"#)
        #expect(try JSONValue.parse(Array(value.encoded.utf8)) == value)
    }

    @Test(arguments: [
        "", "{", "[1,", #"{"a" 1}"#, #"{"a":1,}"#, "[1 2]", "tru", #""abc"#, "\"a\u{1}b\"", #""\x""#, #""\ud800""#, "1 2", "-", "{}x",
    ])
    func refusesMalformedText(_ text: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func limitsNesting() throws {
        let deep = String(repeating: "[", count: JSONValue.maximumDepth + 1) + String(repeating: "]", count: JSONValue.maximumDepth + 1)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Array(deep.utf8)) }
        let allowed = String(repeating: "[", count: JSONValue.maximumDepth) + String(repeating: "]", count: JSONValue.maximumDepth)
        _ = try JSONValue.parse(Array(allowed.utf8))
    }
}
