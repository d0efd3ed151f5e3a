@testable import Devices
@testable import Runtime
import Synchronization
import Testing

/// Records every level change a device drives.
final class RecordingLine: InterruptLine {
    let levels = Mutex<[Bool]>([])
    func setLevel(_ high: Bool) { levels.withLock { $0.append(high) } }
    var history: [Bool] { levels.withLock { $0 } }
    var isHigh: Bool { history.last ?? false }
}

final class RecordingOutput: Sendable {
    let bytes = Mutex<[UInt8]>([])
    var written: [UInt8] { bytes.withLock { $0 } }
    func write(_ data: UnsafeRawBufferPointer) { bytes.withLock { $0 += data } }
}

extension BusDevice {
    func read(_ offset: UInt64) -> UInt8 {
        var value: UInt8 = 0
        withUnsafeMutableBytes(of: &value) { read(offset: offset, into: $0) }
        return value
    }

    func write(_ offset: UInt64, _ value: UInt8) {
        withUnsafeBytes(of: value) { write(offset: offset, data: $0) }
    }
}

@Suite struct Serial16550Tests {
    let line = RecordingLine()
    let output = RecordingOutput()
    let serial: Serial16550

    init() {
        let output = self.output
        serial = Serial16550(interrupt: line) { output.write($0) }
    }

    @Test func transmitIsImmediateAndTHRIsAlwaysEmpty() {
        for byte in Array("hi\n".utf8) { serial.write(0, byte) }
        #expect(output.written == Array("hi\n".utf8))
        #expect(serial.read(5) & 0x60 == 0x60)
        #expect(serial.read(5) & 0x01 == 0)
    }

    @Test func receivedBytesSetDataReadyAndComeOutInOrder() {
        #expect(serial.receive([0x41, 0x42]) == 2)
        #expect(serial.read(5) & 0x01 == 0x01)
        #expect(serial.read(0) == 0x41)
        #expect(serial.read(0) == 0x42)
        #expect(serial.read(5) & 0x01 == 0)
    }

    @Test func receiveFIFOIsBounded() {
        let many = [UInt8](repeating: 0x61, count: Serial16550.receiveCapacity + 100)
        #expect(serial.receive(many) == Serial16550.receiveCapacity)
        #expect(serial.receiveSpace == 0)
        #expect(serial.receive([0x62]) == 0)
        _ = serial.read(0)
        #expect(serial.receiveSpace == 1)
    }

    @Test func divisorLatchSwitchesTheFirstTwoRegisters() {
        serial.write(3, 0x80)
        serial.write(0, 0x01)
        serial.write(1, 0x02)
        #expect(serial.read(0) == 0x01)
        #expect(serial.read(1) == 0x02)
        #expect(output.written.isEmpty)
        serial.write(3, 0x03)
        #expect(serial.read(1) == 0)
        #expect(serial.read(3) == 0x03)
    }

    @Test func noInterruptPendingReadsAsOneInIIR() {
        #expect(serial.read(2) == 0x01)
        serial.write(2, 0x01)
        #expect(serial.read(2) == 0xc1)
    }

    @Test func enablingTHREmptyRaisesItAndReadingIIRClearsIt() {
        serial.write(1, 0x02)
        #expect(line.isHigh)
        #expect(serial.read(2) == 0x02)
        #expect(!line.isHigh)
        #expect(serial.read(2) == 0x01)
        serial.write(0, 0x41)
        #expect(line.isHigh)
    }

    @Test func receivedDataOutranksTHREmptyAndClearsWhenRead() {
        serial.write(1, 0x03)
        serial.receive([0x7a])
        #expect(serial.read(2) == 0x04)
        #expect(line.isHigh)
        #expect(serial.read(0) == 0x7a)
        // THR empty is still pending below it.
        #expect(serial.read(2) == 0x02)
        #expect(!line.isHigh)
    }

    @Test func noInterruptWhenDisabled() {
        serial.receive([1])
        serial.write(0, 0x41)
        #expect(line.history.isEmpty)
        #expect(serial.read(2) == 0x01)
    }

    @Test func loopbackReflectsModemControlAndKeepsOutputLocal() {
        serial.write(4, 0x1a)
        #expect(serial.read(6) & 0xf0 == 0x90)
        serial.write(0, 0x55)
        #expect(output.written.isEmpty)
        #expect(serial.read(0) == 0x55)
        serial.write(4, 0x0b)
        #expect(serial.read(6) == 0xb0)
    }

    @Test func scratchRegisterKeepsItsValue() {
        serial.write(7, 0x5a)
        #expect(serial.read(7) == 0x5a)
    }

    @Test func fifoClearDropsReceivedBytes() {
        serial.receive([1, 2, 3])
        serial.write(2, 0x03)
        #expect(serial.read(5) & 0x01 == 0)
    }
}

@Suite struct I8042Tests {
    @Test func resetCommandEndsTheVM() {
        let resets = Mutex(0)
        let controller = I8042 { resets.withLock { $0 += 1 } }
        #expect(controller.read(4) == 0)
        controller.write(4, 0xd1)
        controller.write(0, 0xfe)
        #expect(resets.withLock { $0 } == 0)
        controller.write(4, 0xfe)
        #expect(resets.withLock { $0 } == 1)
        #expect(controller.read(1) == 0xff)
    }
}

@Suite struct BusTests {
    final class Probe: BusDevice, @unchecked Sendable {
        var lastOffset: UInt64?
        func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
            lastOffset = offset
            data.initializeMemory(as: UInt8.self, repeating: 0x11)
        }
        func write(offset: UInt64, data: UnsafeRawBufferPointer) { lastOffset = offset }
    }

    @Test func dispatchesByRangeWithOffsets() throws {
        let bus = Bus()
        let low = Probe()
        let high = Probe()
        try bus.insert(high, base: 0x3f8, size: 8)
        try bus.insert(low, base: 0x60, size: 5)
        var value: UInt8 = 0
        #expect(withUnsafeMutableBytes(of: &value) { bus.read(0x3fd, into: $0) })
        #expect(value == 0x11)
        #expect(high.lastOffset == 5)
        #expect(bus.write(0x64, data: UnsafeRawBufferPointer(start: nil, count: 0)))
        #expect(low.lastOffset == 4)
    }

    @Test func unclaimedReadsAreAllOnes() {
        let bus = Bus()
        var value: UInt32 = 0
        let claimed = withUnsafeMutableBytes(of: &value) { bus.read(0x80, into: $0) }
        #expect(!claimed)
        #expect(value == 0xffff_ffff)
    }

    @Test func overlappingRangesAreRejected() throws {
        let bus = Bus()
        try bus.insert(Probe(), base: 0x3f8, size: 8)
        #expect(throws: Bus.Error.overlap(base: 0x3f0, size: 9, existing: 0x3f8)) {
            try bus.insert(Probe(), base: 0x3f0, size: 9)
        }
        #expect(throws: Bus.Error.overlap(base: 0x3ff, size: 1, existing: 0x3f8)) {
            try bus.insert(Probe(), base: 0x3ff, size: 1)
        }
        #expect(throws: Bus.Error.emptyRange(base: 0x10)) { try bus.insert(Probe(), base: 0x10, size: 0) }
        try bus.insert(Probe(), base: 0x400, size: 1)
    }
}

@Suite struct ConsoleEscapeTests {
    @Test func ctrlAXQuits() {
        var escape = ConsoleEscape()
        let result = escape.process([0x6c, 0x73, 0x01, 0x78, 0x61])
        #expect(result.forward == [0x6c, 0x73])
        #expect(result.quit)
    }

    @Test func ctrlATwiceSendsOneAndAnEscapeMaySpanReads() {
        var escape = ConsoleEscape()
        #expect(escape.process([0x61, 0x01]) == ([0x61], false))
        #expect(escape.process([0x01, 0x62]) == ([0x01, 0x62], false))
        #expect(escape.process([0x01, 0x63]) == ([0x01, 0x63], false))
    }
}

@Suite struct MemorySizeTests {
    let host: UInt64 = 8 << 30

    @Test func acceptsSuffixesAndPlainMebibytes() throws {
        #expect(try MemorySize.parse("256M", hostRAM: host) == 256 << 20)
        #expect(try MemorySize.parse("256", hostRAM: host) == 256 << 20)
        #expect(try MemorySize.parse("1G", hostRAM: host) == 1 << 30)
        #expect(try MemorySize.parse("1GiB", hostRAM: host) == 1 << 30)
        #expect(try MemorySize.parse("65536k", hostRAM: host) == 64 << 20)
    }

    @Test func rejectsImpossibleSizes() {
        #expect(throws: MemorySize.Error.tooSmall("0", minimum: 2 << 20)) { try MemorySize.parse("0", hostRAM: host) }
        #expect(throws: MemorySize.Error.tooLarge("1T", hostRAM: host)) { try MemorySize.parse("1T", hostRAM: host) }
        #expect(throws: MemorySize.Error.unreadable("lots")) { try MemorySize.parse("lots", hostRAM: host) }
        #expect(throws: MemorySize.Error.unreadable("-5M")) { try MemorySize.parse("-5M", hostRAM: host) }
        #expect(throws: MemorySize.Error.unaligned("4097K")) { try MemorySize.parse("4097K", hostRAM: host) }
        #expect(throws: MemorySize.Error.tooLarge("99999999999999999G", hostRAM: host)) {
            try MemorySize.parse("99999999999999999G", hostRAM: host)
        }
        #expect(MemorySize.Error.tooLarge("1T", hostRAM: host).description == "memory size '1T' is more than this host's 8.0 GiB of RAM")
    }
}

@Suite struct BootEventsTests {
    @Test func markerIsFoundAcrossWrites() {
        let events = BootEvents(marker: "init started")
        for chunk in ["boot... init st", "arted here"] {
            Array(chunk.utf8).withUnsafeBytes { events.observe($0) }
        }
        #expect(events.recorded.marker != nil)
    }

    @Test func partialMatchesDoNotCount() {
        let events = BootEvents(marker: "abc")
        Array("ababxabd".utf8).withUnsafeBytes { events.observe($0) }
        #expect(events.recorded.marker == nil)
        Array("aabc".utf8).withUnsafeBytes { events.observe($0) }
        #expect(events.recorded.marker != nil)
        #expect(events.json.contains("\"marker_ms\":"))
    }

    @Test func overlappingStartsAreNotMissed() {
        let events = BootEvents(marker: "microvm-guest")
        Array("microvmicrovm-guest".utf8).withUnsafeBytes { events.observe($0) }
        #expect(events.recorded.marker != nil)
    }
}
