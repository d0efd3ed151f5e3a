import ArgumentParser
import Glibc
import VMM

/// `microvm restore`: start a VM again from a snapshot `microvm ctl … snapshot` wrote.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Start a VM from a snapshot, where it was when the snapshot was taken.",
        discussion: """
            Reads PATH and guest memory from PATH.mem, mapped copy-on-write: VMs restored from one snapshot \
            share the pages none of them changed. Snapshots are trusted input (they hold guest memory and CPU \
            state) and name no host file: give the VM's disks again with --disk, in their order, and its shares \
            with --share, by tag (the VM's 9p root is --share DIR:microvm-root). A disk that changed since is refused.
            """
    )

    @Argument(help: ArgumentHelp("The snapshot written by `microvm ctl SOCKET snapshot PATH`.", valueName: "path"))
    var snapshot: String

    @Option(help: ArgumentHelp("The snapshot's next disk (/dev/vda, /dev/vdb, …), read-only with ,ro as when it was attached. Repeatable.", valueName: "path[,ro]"))
    var disk: [String] = []

    @Option(help: ArgumentHelp("The directory behind the snapshot's share TAG, read-only with ,ro as when it was shared. Repeatable.", valueName: "dir:tag[,ro]"))
    var share: [String] = []

    @OptionGroup var session: SessionOptions

    @Flag(help: ArgumentHelp("On exit, print timestamps as JSON on stderr: from main to VM restored, first KVM_RUN, first console byte, and exit."))
    var bootTimer = false

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let events = BootEvents(marker: nil, onFirstOutput: nil)
        do {
            let bound = Session(consoleSocket: session.consoleSocket, consoleLog: session.consoleLog,
                                consoleLogLimit: try session.consoleLogLimit(), disks: disk.map(RunCommand.parseDisk),
                                shares: try share.map { try RunCommand.parseShare($0, allowingRootTag: true) },
                                seccomp: !session.noSeccomp, controlSocket: session.apiSocket)
            // Before the restore: a share's open files are opened again while the VM is built.
            RunCommand.raiseOpenFileLimit()
            let vm = try MicroVM.restore(from: snapshot, session: bound, events: events)
            if session.jail { try vm.enterJail() }
            session.announceConsole()
            let exit = vm.run()
            if let message = exit.message { report(message) }
            if bootTimer { report("boot-timer: \(events.json)") }
            throw ExitCode(exit.status)
        } catch let error as ExitCode {
            throw error
        } catch {
            report("error: \(error)")
            throw ExitCode(1)
        }
    }
}
