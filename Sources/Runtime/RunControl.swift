import CLinux
import Glibc
import KVM
import Synchronization

/// What a vCPU's run loop needs of the VM's stop switch: `RunControl` is one, and
/// tests use it as is against a scripted vCPU.
package protocol StopSwitch: AnyObject, Sendable {
    var isStopping: Bool { get }
    /// Records why the VM stops (the first reason wins) and breaks every vCPU out of the guest.
    func stop(_ exit: VMExit)
    /// Whether the VM is being paused: the vCPU finishes its exit and parks.
    var isPausing: Bool { get }
    /// Waits, out of the guest, until the VM resumes or stops.
    func park()
}

/// The stop switch every thread of a running VM shares: the first reason to stop
/// wins, wakes the event loop and kicks every vCPU out of KVM_RUN. vCPUs register
/// before their threads start and say when their threads end, all under one lock,
/// so a stop can neither miss a vCPU nor signal a thread that is gone.
package final class RunControl: StopSwitch {
    private struct Participant {
        /// Makes the vCPU's current or next KVM_RUN return at once.
        let interrupt: @Sendable () -> Void
        var thread: pthread_t?
        var finished = false
    }

    private struct State {
        var exit: VMExit?
        var participants: [Participant] = []
    }

    private let state = Mutex(State())
    package let wakeup: EventFD
    let gate = PauseGate()

    package init() throws(KVMError) {
        wakeup = try EventFD(nonBlocking: true)
    }

    package var exit: VMExit? { state.withLock { $0.exit } }
    package var isStopping: Bool { exit != nil }

    /// Registers a vCPU before its thread exists; returns its slot. When the VM is
    /// already stopping, `interrupt` runs at once, so the thread never enters the guest.
    package func register(interrupt: @escaping @Sendable () -> Void) -> Int {
        state.withLock { state in
            state.participants.append(Participant(interrupt: interrupt))
            if state.exit != nil { interrupt() }
            return state.participants.count - 1
        }
    }

    /// The thread that runs `slot`'s vCPU, once it exists; kicked at once when stopping.
    package func attach(thread: pthread_t, to slot: Int) {
        state.withLock { state in
            state.participants[slot].thread = thread
            if state.exit != nil { Self.kick(state.participants[slot]) }
        }
    }

    /// The last thing `slot`'s thread does: from here on nobody signals it.
    package func finished(_ slot: Int) {
        state.withLock { $0.participants[slot].finished = true }
    }

    package func stop(_ exit: VMExit) {
        let first = state.withLock { state in
            guard state.exit == nil else { return false }
            state.exit = exit
            for participant in state.participants { Self.kick(participant) }
            return true
        }
        if first {
            gate.release()
            wakeup.signal()
        }
    }

    package var isPausing: Bool { gate.isClosed }

    package func park() { gate.park() }

    /// Brings every vCPU out of the guest and parks it; true once all `count` are parked.
    func pause(vcpus count: Int) -> Bool {
        gate.close()
        state.withLock { state in
            for participant in state.participants { Self.kick(participant) }
        }
        // A vCPU in a console write blocked on a slow reader parks once the write ends.
        return gate.waitUntilParked(count, timeoutMilliseconds: 5000)
    }

    func resume() {
        gate.open()
    }

    /// Kicks every vCPU thread that has not finished again: a thread that was between its
    /// stop check and a blocking system call when the first kick came is woken by this one.
    package func kickAgain() {
        state.withLock { state in
            guard state.exit != nil else { return }
            for participant in state.participants { Self.kick(participant) }
        }
    }

    private static func kick(_ participant: Participant) {
        participant.interrupt()
        if let thread = participant.thread, !participant.finished {
            pthread_kill(thread, KickSignal.number)
        }
    }
}
