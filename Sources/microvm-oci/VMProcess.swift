import Glibc
import OCI
import VMM

/// `microvm-oci vm`: the container's process as conmon and Podman see it. Builds the
/// VM, says so on the ready descriptor (or says why not), waits for `start` to open
/// the start FIFO, runs the guest and exits with the container process's status.
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
        do {
            let id = try arguments.containerID()
            guard let bundle = arguments.options["bundle"] else { throw OCIError.usage("vm: no --bundle") }
            let paths = try StateStore(root: arguments.root).paths(of: id)
            var (_, plan) = try RuntimeCommands.plan(bundle: bundle, allowedImages: arguments.allowedImages)
            plan.configuration.appendedInitrds = [paths.configArchive]
            plan.configuration.consoleLog = paths.consoleLog
            plan.configuration.consoleLogLimit = 512 << 10  // under /run, which is RAM: half a MiB a container
            fifo = paths.startFIFO
            vm = try MicroVM(plan.configuration)
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
        let go = open(fifo, O_WRONLY | O_CLOEXEC)
        guard go >= 0 else { return 1 }
        var byte: UInt8 = 1
        _ = write(go, &byte, 1)
        close(go)
        return vm.run().status
    }
}
