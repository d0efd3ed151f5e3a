import Glibc
import Synchronization

/// The copy of the guest's console output that `VMConfiguration.consoleLog` names, never
/// more than `limit` bytes: a guest that prints without end must not fill the host's disk,
/// or its RAM where the log lies in /run (as microvm-oci's do). A write that would pass the
/// limit cuts the log to about half of it, in the same file: one line saying how many bytes
/// were dropped so far, then the newest output, which is the part that tells how a guest
/// ended. A character device (/dev/null) is written without a limit.
package final class ConsoleLog: Sendable {
    /// Room at the start of a cut log for the line that counts what was dropped.
    static let markerRoom: UInt64 = 256
    /// How much older output one cut moves at a time.
    static let copyChunk = 64 << 10

    let file: OutputFile
    let limit: UInt64
    /// Bytes in the file, of them the marker line's, bytes of output dropped by all cuts
    /// so far, and whether a write failed; the lock also keeps the vCPUs' writes whole.
    private let state = Mutex<State>(State())

    struct State {
        var size: UInt64 = 0
        var marker: UInt64 = 0
        var dropped: UInt64 = 0
        var failed = false
    }

    /// Logs to `file`, which `begin()` empties; `limit` is brought within `VMConfiguration.consoleLogLimits`.
    package init(_ file: OutputFile, limit: UInt64) {
        self.file = file
        self.limit = min(max(limit, VMConfiguration.consoleLogLimits.lowerBound), VMConfiguration.consoleLogLimits.upperBound)
    }

    /// Empties the file, when the VM starts to run: a run that cannot start leaves the last
    /// run's log as it was.
    package func begin() throws(OutputFile.Error) {
        try state.withLock { state throws(OutputFile.Error) in
            try file.truncate(to: 0)
            state = State()
        }
    }

    /// Logs `bytes`. The first write that fails throws; after it the log takes nothing
    /// more (nor is it closed, which a vCPU thread may not do).
    package func write(_ bytes: UnsafeRawBufferPointer, abandon: () -> Bool = { false }) throws(OutputFile.Error) {
        try state.withLock { state throws(OutputFile.Error) in
            guard !state.failed else { return }
            do throws(OutputFile.Error) {
                let count = UInt64(bytes.count)
                if !file.isRegular {
                    try file.write(bytes, abandon: abandon)
                } else if state.size + count <= limit {
                    try file.write(bytes, at: state.size, abandon: abandon)
                    state.size += count
                } else {
                    try cut(adding: bytes, to: &state)
                }
            } catch {
                state.failed = true
                throw error
            }
        }
    }

    /// Rewrites the log as the marker line, the newest of what it held and the newest of
    /// `bytes`, half the limit in all. The bytes kept lie past half the limit, beyond the
    /// marker, so they move towards the start without overwriting what is still to move.
    private func cut(adding bytes: UnsafeRawBufferPointer, to state: inout State) throws(OutputFile.Error) {
        let keep = limit / 2 - Self.markerRoom
        let fresh = min(UInt64(bytes.count), keep)
        let old = min(state.size, keep - fresh)
        state.dropped += state.size - state.marker + UInt64(bytes.count) - fresh - old
        let marker = Array("[microvm: the console log keeps at most \(limit) bytes; \(state.dropped) bytes of older output were dropped]\n".utf8)
        let start = UInt64(marker.count)
        state.marker = start
        try move(from: state.size - old, to: start, count: old)
        try file.write(marker[...], at: 0)
        try file.write(UnsafeRawBufferPointer(rebasing: bytes[(bytes.count - Int(fresh))...]), at: start + old)
        state.size = start + old + fresh
        try file.truncate(to: state.size)
    }

    /// Copies `count` bytes at `source` to the lower offset `destination`, front to back.
    private func move(from source: UInt64, to destination: UInt64, count: UInt64) throws(OutputFile.Error) {
        var buffer = [UInt8](repeating: 0, count: Self.copyChunk)
        var moved: UInt64 = 0
        while moved < count {
            let chunk = Int(min(UInt64(buffer.count), count - moved))
            let read = try buffer.withUnsafeMutableBytes { buffer in
                Result { () throws(OutputFile.Error) in try file.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<chunk]), at: source + moved) }
            }.get()
            guard read > 0 else { throw file.failure("the file shrank while the log was cut") }
            try file.write(buffer[..<read], at: destination + moved)
            moved += UInt64(read)
        }
    }
}
