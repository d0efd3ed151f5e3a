import Devices
import Synchronization

/// The guest command's own standard streams (`VMConfiguration.commandStreams`): `io`
/// carries standard input and output (hvc0), `errors` standard error (hvc1) and, in
/// the other direction, control lines for the guest's `oci-init`. The lines wait here
/// until the guest says it reads them (`StreamsReadyRegister`): a port nobody has opened
/// drops what it receives.
final class CommandStreams: Sendable {
    let io: VirtioConsole
    let errors: VirtioConsole

    private struct Control {
        var ready = false
        var waiting: [UInt8] = []
    }

    private let control = Mutex(Control())

    init(io: VirtioConsole, errors: VirtioConsole) {
        self.io = io
        self.errors = errors
    }

    /// Asks the guest to send `signal` to the command.
    func forward(signal: Int32) {
        send("signal \(signal)\n")
    }

    /// Tells the guest that standard input ended, so that the command reads its end.
    func endOfInput() {
        send("eof\n")
    }

    /// The guest reads its control lines from now on: those that waited go first.
    func guestReady() {
        control.withLock { control in
            guard !control.ready else { return }
            control.ready = true
            errors.receive(control.waiting)
            control.waiting = []
        }
    }

    /// A line goes whole or not at all: the lines held for a guest that reads none of them
    /// never exceed the console's bounded input, and never hold half a line that a later
    /// one would run into.
    private func send(_ line: String) {
        let bytes = Array(line.utf8)
        control.withLock { control in
            if control.ready {
                guard errors.inputSpace >= bytes.count else { return }
                errors.receive(bytes)
            } else if control.waiting.count + bytes.count <= VirtioConsole.inputCapacity {
                control.waiting += bytes
            }
        }
    }
}
