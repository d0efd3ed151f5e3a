@testable import Devices
@testable import Runtime
import Synchronization
import Testing

/// The control lines a container's VM sends its guest: held until the guest says it reads
/// them, then whole lines or none, within the console's bounded input.
struct CommandStreamsTests {
    @Test func controlLinesWaitForTheGuestThenStayWholeAndBounded() {
        let streams = CommandStreams(io: VirtioConsole { _ in }, errors: VirtioConsole { _ in })
        streams.forward(signal: 15)
        streams.endOfInput()
        #expect(streams.errors.inputSpace == VirtioConsole.inputCapacity, "nothing reaches the port before the guest is ready")
        streams.guestReady()
        #expect(streams.errors.inputSpace == VirtioConsole.inputCapacity - "signal 15\neof\n".utf8.count)
        streams.guestReady()
        #expect(streams.errors.inputSpace == VirtioConsole.inputCapacity - "signal 15\neof\n".utf8.count)
        // A guest that never reads: the input fills to within less than a line, and stays there.
        for _ in 0..<VirtioConsole.inputCapacity { streams.forward(signal: 15) }
        let left = streams.errors.inputSpace
        #expect(left < "signal 15\n".utf8.count)
        streams.forward(signal: 9)
        #expect(streams.errors.inputSpace == left)
        #expect(streams.io.inputSpace == VirtioConsole.inputCapacity)
    }

    @Test func linesHeldForAGuestThatIsNeverReadyAreBounded() {
        let streams = CommandStreams(io: VirtioConsole { _ in }, errors: VirtioConsole { _ in })
        for _ in 0..<VirtioConsole.inputCapacity { streams.forward(signal: 1) }
        streams.guestReady()
        let held = VirtioConsole.inputCapacity - streams.errors.inputSpace
        #expect(held <= VirtioConsole.inputCapacity && held % "signal 1\n".utf8.count == 0 && held > 0)
    }

    @Test func theReadyRegisterTakesOnlyAFourByteOne() {
        let count = Mutex(0)
        let register = StreamsReadyRegister { count.withLock { $0 += 1 } }
        withUnsafeBytes(of: UInt32(2).littleEndian) { register.write(offset: 0, data: $0) }
        withUnsafeBytes(of: UInt32(1).littleEndian) { register.write(offset: 4, data: $0) }
        withUnsafeBytes(of: UInt16(1).littleEndian) { register.write(offset: 0, data: $0) }
        #expect(count.withLock { $0 } == 0)
        withUnsafeBytes(of: UInt32(1).littleEndian) { register.write(offset: 0, data: $0) }
        #expect(count.withLock { $0 } == 1)
        var read = [UInt8](repeating: 0xff, count: 4)
        read.withUnsafeMutableBytes { register.read(offset: 0, into: $0) }
        #expect(read == [0, 0, 0, 0])
    }
}
