import CLinux
import Glibc
import OCI
import VMM

/// `microvm-oci vm`: the container's process as conmon and Podman see it. Builds the
/// VM, enters the jail, says so on the ready descriptor (or says why not), waits for
/// `start` to open the start FIFO, runs the guest and exits with the container process's status.
struct VMProcess {
    static let readyLine = "ready\n"

    let arguments: RuntimeArguments

    init(_ arguments: RuntimeArguments) {
        self.arguments = arguments
    }

    func run() -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let ready = Int32(arguments.options["ready-fd"] ?? "") ?? -1
        func report(_ line: String) {
            if ready >= 0 { _ = line.withCString { write(ready, $0, strlen($0)) } }
        }
        let vm: MicroVM
        let fifo: String
        let directory: Int32
        do {
            let id = try arguments.containerID()
            guard let bundle = arguments.options["bundle"] else { throw OCIError.usage("vm: no --bundle") }
            let paths = try StateStore(root: arguments.root).paths(of: id)
            var (_, plan) = try RuntimeCommands.plan(bundle: bundle, allowedImages: arguments.allowedImages)
            plan.configuration.consoleLog = paths.consoleLog
            // `pause` and `resume` reach the VM here; the jail shows only this directory of the
            // container's. A path too long for a socket (a deep --root and a long ID) leaves
            // the container without pause, which `pause` then says.
            if paths.controlSocket.utf8.count < UnixSocket.maximumPathLength {
                guard mkdir(paths.controlDirectory, 0o700) == 0 || errno == EEXIST else {
                    throw OCIError.failed("cannot make \(paths.controlDirectory): \(String(cString: strerror(errno)))")
                }
                plan.configuration.controlSocket = paths.controlSocket
            }
            plan.configuration.consoleLogLimit = 512 << 10  // under /run, which is RAM: half a MiB a container
            // From the template of the container's machine, unless the spec asks for a boot
            // or the VM cannot start from one; then the configuration rides on the initrd.
            func boot() throws -> MicroVM {
                plan.configuration.appendedInitrds = [paths.configArchive]
                return try MicroVM(plan.configuration)
            }
            if plan.boots || plan.configuration.templateObstacle != nil {
                vm = try boot()
            } else {
                let log = arguments.log
                do {
                    vm = try MicroVM.fromTemplate(plan.configuration.templateMachine, session: plan.configuration.session,
                                                  order: plan.workOrder) { log.info($0) }
                } catch MicroVM.TemplateError.order(.tooLong(let length)) {
                    // A configuration larger than a work order carries rides on the initrd instead.
                    log.info("the work order would be \(length) bytes; booting the VM")
                    vm = try boot()
                }
            }
            // The jail hides the container's directory: the start FIFO is opened through it.
            fifo = String(paths.startFIFO.dropFirst(paths.directory.count + 1))
            directory = open(paths.directory, CLINUX_O_PATH | O_DIRECTORY | O_CLOEXEC)
            guard directory >= 0 else { throw OCIError.failed("cannot open \(paths.directory): \(String(cString: strerror(errno)))") }
            try vm.enterJail()
        } catch {
            // `create` prints what comes back on the ready descriptor; run by hand, the error is this command's own.
            if ready >= 0 {
                report("\(error)\n")
            } else {
                arguments.log.error("\(error)")
            }
            return (error as? OCIError)?.exitStatus ?? 1
        }
        report(Self.readyLine)
        if ready >= 0 { close(ready) }
        // Blocks until `start` opens the other end: no vCPU has run before that.
        let go = openat(directory, fifo, O_WRONLY | O_CLOEXEC)
        close(directory)
        guard go >= 0 else { return 1 }
        var byte: UInt8 = 1
        _ = write(go, &byte, 1)
        close(go)
        let exit = vm.run()
        // The container's standard error: --log's file is out of the jail's sight by now.
        if let message = exit.message { _ = "microvm-oci: \(message)\n".withCString { write(STDERR_FILENO, $0, strlen($0)) } }
        return exit.status
    }
}
