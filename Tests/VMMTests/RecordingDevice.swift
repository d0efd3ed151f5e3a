@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

/// A device that records what the transport tells it, and can hold a reset in progress.
final class RecordingDevice: VirtioDevice, @unchecked Sendable {
    let calls = Mutex<[String]>([])
    /// While set, `reset()` waits for `releaseReset` after saying it started.
    let resetStarted = Semaphore()
    let releaseReset = Semaphore()
    let holdReset = Atomic<Bool>(false)

    var deviceType: UInt32 { 42 }
    var maximumQueueSizes: [UInt16] { [8, 8] }
    var deviceFeatures: UInt64 { 0 }
    func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {}
    func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        calls.withLock { $0.append("activate " + queues.map { $0 == nil ? "-" : "q" }.joined()) }
    }
    func queueNotified(_ index: Int) { calls.withLock { $0.append("notify \(index)") } }
    func saveState(into writer: inout StateWriter) {}
    func restoreState(from reader: inout StateReader) throws(StateError) {}
    func reset() {
        if holdReset.load(ordering: .acquiring) {
            resetStarted.signal()
            releaseReset.wait()
        }
        calls.withLock { $0.append("reset") }
    }
    var recorded: [String] { calls.withLock { $0 } }
}
