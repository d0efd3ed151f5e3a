import ArgumentParser
import VMM

/// What `run` and `restore` share: where the console goes, the control socket, and how
/// quiet and how confined microvm is.
struct SessionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Serve the console on this Unix socket (for `microvm attach`) instead of the terminal.", valueName: "path"))
    var consoleSocket: String?

    @Option(help: ArgumentHelp("Also write the guest's console output to this file (a regular file, emptied once the VM is built, or a character device such as /dev/null).", valueName: "path"))
    var consoleLog: String?

    @Option(help: ArgumentHelp("The most the console log holds, with a K, M or G suffix; a plain number is MiB. Past it the log keeps its newest half, after a line that says how much was dropped.", valueName: "size"))
    var consoleLogSize: String?

    @Option(help: ArgumentHelp("Answer control requests (pause, resume, snapshot, stop, status) on this Unix socket; see `microvm ctl`.", valueName: "path"))
    var apiSocket: String?

    @Flag(help: "Print nothing of microvm's own unless something fails.")
    var quiet = false

    @Flag(help: "Run without the seccomp system-call allow-lists on the VM's threads.")
    var noSeccomp = false

    @Flag(help: "Once the VM is built, jail its process: a mount namespace showing only the directories of the VM's sockets, no_new_privs, capabilities dropped (as root, only those a share needs are kept), limits on open files and core dumps. Without root, needs unprivileged user namespaces.")
    var jail = false

    /// `--console-log-size`, checked, or the default.
    func consoleLogLimit() throws -> UInt64 {
        guard let consoleLogSize else { return VMConfiguration.defaultConsoleLogLimit }
        guard consoleLog != nil else { throw RunCommand.BadArgument(description: "--console-log-size needs --console-log FILE") }
        guard let limit = MemorySize.bytes(in: consoleLogSize), VMConfiguration.consoleLogLimits.contains(limit) else {
            throw RunCommand.BadArgument(description: "--console-log-size \(consoleLogSize): give at least 4K and at most 1T")
        }
        return limit
    }

    /// Tells the user where to attach, unless told to be quiet.
    func announceConsole() {
        if let consoleSocket, !quiet { report("console on \(consoleSocket); attach with: microvm attach \(consoleSocket)") }
    }
}
