import Glibc
import Synchronization

/// The stop switch every thread of a running VM shares: the first reason to stop
/// wins, wakes the event loop and kicks every vCPU out of KVM_RUN.
final class RunControl: Sendable {
    /// The signal that breaks a vCPU thread out of KVM_RUN; its handler does nothing.
    static let kickSignal = SIGUSR1

    private let reason = Mutex<VMExit?>(nil)
    let wakeup: EventFD
    private let kicks = Mutex<[@Sendable () -> Void]>([])

    init() throws(KVMError) {
        wakeup = try EventFD(nonBlocking: true)
    }

    var exit: VMExit? { reason.withLock { $0 } }
    var isStopping: Bool { exit != nil }

    /// Registers how to kick one vCPU.
    func onStop(_ kick: @escaping @Sendable () -> Void) {
        kicks.withLock { $0.append(kick) }
    }

    func stop(_ exit: VMExit) {
        let first = reason.withLock { current in
            guard current == nil else { return false }
            current = exit
            return true
        }
        guard first else { return }
        wakeup.signal()
        for kick in kicks.withLock({ $0 }) { kick() }
    }
}
