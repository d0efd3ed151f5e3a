@testable import Devices
@testable import Runtime
import Testing

/// The control lines a container's VM sends its guest: whole lines or none, within the
/// console's bounded input, whether or not the guest reads them.
struct CommandStreamsTests {
    @Test func controlLinesAreWholeAndBounded() {
        let streams = CommandStreams(io: VirtioConsole { _ in }, errors: VirtioConsole { _ in })
        streams.forward(signal: 15)
        #expect(streams.errors.inputSpace == VirtioConsole.inputCapacity - "signal 15\n".utf8.count)
        streams.endOfInput()
        #expect(streams.errors.inputSpace == VirtioConsole.inputCapacity - "signal 15\neof\n".utf8.count)
        // A guest that never reads: the input fills to within less than a line, and stays there.
        for _ in 0..<VirtioConsole.inputCapacity { streams.forward(signal: 15) }
        let left = streams.errors.inputSpace
        #expect(left < "signal 15\n".utf8.count)
        streams.forward(signal: 9)
        #expect(streams.errors.inputSpace == left)
        #expect(streams.io.inputSpace == VirtioConsole.inputCapacity)
    }
}
