/// The console's escape key, as in kvmtool and QEMU: Ctrl-A then `x` quits,
/// Ctrl-A twice sends one Ctrl-A; Ctrl-A then anything else sends both.
public struct ConsoleEscape: Sendable {
    public static let escapeByte: UInt8 = 0x01
    public static let quitByte = UInt8(ascii: "x")

    private var pending = false

    public init() {}

    /// Splits typed bytes into what goes to the guest and whether the user quit.
    public mutating func process(_ bytes: some Sequence<UInt8>) -> (forward: [UInt8], quit: Bool) {
        var forward: [UInt8] = []
        for byte in bytes {
            if pending {
                pending = false
                if byte == Self.quitByte { return (forward, true) }
                if byte != Self.escapeByte { forward.append(Self.escapeByte) }
                forward.append(byte)
            } else if byte == Self.escapeByte {
                pending = true
            } else {
                forward.append(byte)
            }
        }
        return (forward, false)
    }
}
