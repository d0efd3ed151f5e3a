import Devices
import Synchronization

/// The virtio-console a template's /init reads its work order from (`WorkOrder`). The
/// guest writes `waitingLine` on it once it is blocked reading: a template is snapshotted
/// from then on. Anything else the guest writes there is dropped.
final class WorkOrderPort: Sendable {
    static let waitingLine = Array("microvm-order: waiting\n".utf8)

    let console: VirtioConsole
    private let watcher: Watcher

    private final class Watcher: Sendable {
        private struct State {
            var recent: [UInt8] = []
            var waiting = false
            var onWaiting: (@Sendable () -> Void)?
        }

        private let state = Mutex(State())

        func observe(_ bytes: UnsafeRawBufferPointer) {
            let action = state.withLock { state -> (@Sendable () -> Void)? in
                guard !state.waiting else { return nil }
                state.recent = Array((state.recent + bytes).suffix(WorkOrderPort.waitingLine.count))
                guard state.recent == WorkOrderPort.waitingLine else { return nil }
                state.waiting = true
                return state.onWaiting
            }
            action?()
        }

        func whenWaiting(_ action: @escaping @Sendable () -> Void) -> Bool {
            state.withLock { state in
                state.onWaiting = action
                return state.waiting
            }
        }
    }

    init() {
        let watcher = Watcher()
        self.watcher = watcher
        console = VirtioConsole { watcher.observe($0) }
    }

    /// Calls `action` once, on a vCPU thread, when the guest says it waits (at once if it did).
    func whenWaiting(_ action: @escaping @Sendable () -> Void) {
        if watcher.whenWaiting(action) { action() }
    }

    /// Hands the guest its order; false when it is larger than the console holds.
    func send(_ order: [UInt8]) -> Bool {
        guard order.count <= VirtioConsole.inputCapacity else { return false }
        return console.receive(order) == order.count
    }
}
