// libFuzzer target: the ACPI power registers, driven by (operation, offset, width, value)
// quadruples. Whatever the guest writes, only the two exact commands act, each once per write.
final class Counts: @unchecked Sendable {
    var powerOffs = 0
    var resets = 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let counts = Counts()
    let registers = PowerRegisters(onPowerOff: { counts.powerOffs += 1 }, onReset: { counts.resets += 1 })
    var index = 0
    while index + 4 <= size {
        let offset = UInt64(data[index + 1] % 4)
        let width = [1, 2, 4, 8][Int(data[index + 2] % 4)]
        var bytes = [UInt8](repeating: data[index + 3], count: width)
        let before = (counts.powerOffs, counts.resets)
        if data[index] % 2 == 0 {
            bytes.withUnsafeMutableBytes { registers.read(offset: offset, into: $0) }
            precondition(bytes.allSatisfy { $0 == 0 }, "the registers read 0")
        } else {
            bytes.withUnsafeBytes { registers.write(offset: offset, data: $0) }
        }
        let value = data[index + 3]
        let powerOff = data[index] % 2 == 1 && width == 1 && offset == PowerRegisters.sleepControlOffset
            && value & 0x20 != 0 && (value >> 2) & 7 == PowerRegisters.softOffSleepType
        let reset = data[index] % 2 == 1 && width == 1 && offset == PowerRegisters.resetOffset && value == PowerRegisters.resetValue
        precondition(counts.powerOffs == before.0 + (powerOff ? 1 : 0) && counts.resets == before.1 + (reset ? 1 : 0))
        index += 4
    }
    return 0
}
