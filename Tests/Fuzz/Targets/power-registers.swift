// libFuzzer target: the ACPI power registers and the streams-ready register, driven by
// (operation, offset, width, value) quadruples. Whatever the guest writes, only the exact
// commands act, each once per write.
final class Counts: @unchecked Sendable {
    var powerOffs = 0
    var resets = 0
    var readies = 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let counts = Counts()
    let registers = PowerRegisters(onPowerOff: { counts.powerOffs += 1 }, onReset: { counts.resets += 1 })
    let streamsReady = StreamsReadyRegister { counts.readies += 1 }
    var index = 0
    while index + 4 <= size {
        let offset = UInt64(data[index + 1] % 4)
        let width = [1, 2, 4, 8][Int(data[index + 2] % 4)]
        var bytes = [UInt8](repeating: data[index + 3], count: width)
        let before = (counts.powerOffs, counts.resets, counts.readies)
        if data[index] % 2 == 0 {
            bytes.withUnsafeMutableBytes { registers.read(offset: offset, into: $0) }
            precondition(bytes.allSatisfy { $0 == 0 }, "the registers read 0")
            bytes.withUnsafeMutableBytes { streamsReady.read(offset: offset, into: $0) }
            precondition(bytes.allSatisfy { $0 == 0 }, "the streams-ready register reads 0")
        } else {
            bytes.withUnsafeBytes { registers.write(offset: offset, data: $0) }
            // A little-endian number: its low byte the value, the rest zero.
            let number = [data[index + 3]] + [UInt8](repeating: 0, count: width - 1)
            number.withUnsafeBytes { streamsReady.write(offset: offset, data: $0) }
        }
        let value = data[index + 3]
        let powerOff = data[index] % 2 == 1 && width == 1 && offset == PowerRegisters.sleepControlOffset
            && value & 0x20 != 0 && (value >> 2) & 7 == PowerRegisters.softOffSleepType
        let reset = data[index] % 2 == 1 && width == 1 && offset == PowerRegisters.resetOffset && value == PowerRegisters.resetValue
        let ready = data[index] % 2 == 1 && width == 4 && offset == 0 && value == 1
        precondition(counts.powerOffs == before.0 + (powerOff ? 1 : 0) && counts.resets == before.1 + (reset ? 1 : 0)
            && counts.readies == before.2 + (ready ? 1 : 0))
        index += 4
    }
    return 0
}
