import ArgumentParser

/// What `run` and `restore` share: where the console goes, the control socket, and how
/// quiet and how confined microvm is.
struct SessionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Serve the console on this Unix socket (for `microvm attach`) instead of the terminal.", valueName: "path"))
    var consoleSocket: String?

    @Option(help: ArgumentHelp("Also write the guest's console output to this file.", valueName: "path"))
    var consoleLog: String?

    @Option(help: ArgumentHelp("Answer control requests (pause, resume, snapshot, stop, status) on this Unix socket; see `microvm ctl`.", valueName: "path"))
    var apiSocket: String?

    @Flag(help: "Print nothing of microvm's own unless something fails.")
    var quiet = false

    @Flag(help: "Run without the seccomp system-call allow-lists on the VM's threads.")
    var noSeccomp = false

    @Flag(help: "Once the VM is built, jail its process: a mount namespace showing only the directories of the VM's sockets, no_new_privs, capabilities dropped (as root, only those a share needs are kept), limits on open files and core dumps. Without root, needs unprivileged user namespaces.")
    var jail = false

    /// Tells the user where to attach, unless told to be quiet.
    func announceConsole() {
        if let consoleSocket, !quiet { report("console on \(consoleSocket); attach with: microvm attach \(consoleSocket)") }
    }
}
