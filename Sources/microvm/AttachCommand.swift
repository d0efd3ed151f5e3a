import ArgumentParser
import Glibc
import VMM

/// `microvm attach`: connect this terminal to a VM's console socket.
struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Connect this terminal to the console of a VM started with --console-socket.",
        discussion: "Ctrl-A x detaches and leaves the guest running; Ctrl-A Ctrl-A sends Ctrl-A."
    )

    @Argument(help: ArgumentHelp("The console socket given to `microvm run --console-socket`.", valueName: "path"))
    var socket: String

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        do {
            switch try ConsoleAttachment.run(socketPath: socket) {
            case .detached: report("detached from \(socket); the guest keeps running")
            case .closed: report("console \(socket) closed")
            }
        } catch {
            report("error: \(error)")
            throw ExitCode(1)
        }
    }
}

/// One line from microvm itself on standard error.
func report(_ message: String) {
    let line = "microvm: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}
