/// A model-specific register and its value.
public struct ModelSpecificRegister: Equatable, Sendable {
    public var index: UInt32
    public var value: UInt64

    public init(_ index: UInt32, _ value: UInt64) {
        self.index = index
        self.value = value
    }
}
