// libFuzzer target: the 16550 register interface, driven by (operation, register, value) triples.
struct QuietLine: InterruptLine {
    func setLevel(_ high: Bool) {}
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let serial = Serial16550(interrupt: QuietLine()) { _ in }
    var index = 0
    while index + 3 <= size {
        let operation = data[index] % 3
        let register = UInt64(data[index + 1] % 8)
        var value = data[index + 2]
        switch operation {
        case 0: withUnsafeMutableBytes(of: &value) { serial.read(offset: register, into: $0) }
        case 1: withUnsafeBytes(of: value) { serial.write(offset: register, data: $0) }
        default: serial.receive(Array(repeating: value, count: Int(register) * 700))
        }
        index += 3
    }
    return 0
}
