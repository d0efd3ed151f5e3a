import Devices

/// The guest command's own standard streams (`VMConfiguration.commandStreams`): `io`
/// carries standard input and output (hvc0), `errors` standard error (hvc1) and, in
/// the other direction, control lines for the guest's `oci-init`.
final class CommandStreams: Sendable {
    let io: VirtioConsole
    let errors: VirtioConsole

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

    /// A line goes whole or not at all: a guest that reads none of them holds at most the
    /// console's bounded input, and never half a line that a later one would run into.
    private func send(_ line: String) {
        let bytes = Array(line.utf8)
        guard errors.inputSpace >= bytes.count else { return }
        errors.receive(bytes)
    }
}
