/// The statements an event method needs: a test of its argument and a notification, as
/// the Generic Event Device's `_EVT` uses them.
extension AML {
    /// `If (predicate) { terms }`, without an Else.
    public struct If: AMLTerm {
        let predicate: AMLTerm
        let terms: [AMLTerm]

        public init(_ predicate: AMLTerm, _ terms: [AMLTerm]) {
            self.predicate = predicate
            self.terms = terms
        }

        public func append(to aml: inout [UInt8]) {
            var body = predicate.aml
            for term in terms { term.append(to: &body) }
            aml.appendPackage(opcode: [0xa0], body: body)
        }
    }

    /// `LEqual (left, right)`: true when the two integers are equal.
    public struct Equal: AMLTerm {
        let left: AMLTerm
        let right: AMLTerm

        public init(_ left: AMLTerm, _ right: AMLTerm) {
            self.left = left
            self.right = right
        }

        public func append(to aml: inout [UInt8]) {
            aml.append(0x93)
            left.append(to: &aml)
            right.append(to: &aml)
        }
    }

    /// `Arg0` to `Arg6`: a method's argument.
    public struct Argument: AMLTerm {
        let index: UInt8

        public init(_ index: UInt8) {
            precondition(index <= 6, "a method's arguments are Arg0 to Arg6")
            self.index = index
        }

        public func append(to aml: inout [UInt8]) {
            aml.append(0x68 + index)
        }
    }

    /// `Notify (path, value)`: hands `value` to the driver of the device at `path`; 0x80 and
    /// up mean what the device's own specification says.
    public struct Notify: AMLTerm {
        let path: String
        let value: UInt8

        public init(_ path: String, _ value: UInt8) {
            self.path = path
            self.value = value
        }

        public func append(to aml: inout [UInt8]) {
            aml.append(0x86)
            aml += NameString.encode(path)
            AMLData.integer(UInt64(value)).append(to: &aml)
        }
    }
}
