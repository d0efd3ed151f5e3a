import CLinux
import Glibc
import OCI
import VMM

/// The runtime's commands. Each locks the container's directory for as long as it
/// reads or changes it; `create` holds it until the VM is built and recorded.
struct RuntimeCommands {
    static let version = "0.3.0"
    /// How long `start` waits for the VM process to take the go-ahead, and `delete
    /// --force` for it to die.
    static let waitMilliseconds = 10_000

    let arguments: RuntimeArguments

    init(_ arguments: RuntimeArguments) {
        self.arguments = arguments
    }

    func run() throws(OCIError) -> Int32 {
        switch arguments.command {
        case "create": try create()
        case "start": try start()
        case "state": try state()
        case "kill": try kill()
        case "delete": try delete()
        case "pause": try pause(true)
        case "resume": try pause(false)
        case "features": try features()
        case "vm": return VMProcess(arguments).run()
        case let other?:
            throw .usage("microvm-oci has no command \(other); it runs create, start, state, kill, delete, pause, resume and features")
        case nil:
            throw .usage(usage)
        }
        return 0
    }

    private var store: StateStore {
        get throws(OCIError) { try StateStore(root: arguments.root) }
    }

    /// Reads and checks the bundle: the spec and the VM it asks for.
    static func plan(bundle: String, allowedImages: [String]) throws(OCIError) -> (ContainerSpec, ContainerPlan) {
        var status = stat()
        guard stat(bundle, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { throw .bundle("the bundle \(bundle) is not a directory") }
        guard access(bundle + "/config.json", F_OK) == 0 else { throw .bundle("the bundle \(bundle) has no config.json") }
        let json = try FileIO.readJSON(bundle + "/config.json") { .config("malformed JSON: \($0)") }
        let spec = try ContainerSpec(json, bundle: bundle)
        let guest: (kernel: String, initrd: String)
        if let kernel = spec.annotation(ContainerPlan.Annotation.kernel), let initrd = spec.annotation(ContainerPlan.Annotation.initrd) {
            guest = (kernel, initrd)
        } else {
            do {
                guest = try DefaultGuest.locate()
            } catch {
                throw .failed("\(error)")
            }
        }
        return (spec, try ContainerPlan(spec: spec, guest: guest, allowedImages: allowedImages))
    }

    private func create() throws(OCIError) {
        let id = try arguments.containerID()
        let bundle = Self.absolute(arguments.options["bundle"] ?? ".")
        if let preserved = arguments.options["preserve-fds"], preserved != "0" {
            throw .usage("create: --preserve-fds \(preserved): a VM cannot take the caller's descriptors")
        }
        let store = try self.store
        // Everything that can be checked before the container exists is.
        let (spec, plan) = try Self.plan(bundle: bundle, allowedImages: arguments.allowedImages)
        if spec.process.terminal && arguments.options["console-socket"] == nil {
            throw .usage("create: process.terminal is true, so --console-socket is needed")
        }
        let directory = try store.create(id)
        var vmProcess: Int32?
        do throws(OCIError) {
            try FileIO.write(directory.paths.configArchive, plan.configArchive)
            guard mkfifo(directory.paths.startFIFO, 0o600) == 0 else {
                throw .failed("mkfifo \(directory.paths.startFIFO): \(Self.errorText())")
            }
            let terminal = try spec.process.terminal ? Self.openTerminal(socket: arguments.options["console-socket"]!, size: spec.process.consoleSize) : nil
            defer { if let terminal { close(terminal) } }
            let pid = try Self.spawnVM(root: store.root, bundle: bundle, allowedImages: arguments.allowedImages, id: id, terminal: terminal)
            vmProcess = pid
            guard let startTime = ProcessInfo.startTime(of: pid) else {
                throw .failed("the VM process \(pid) ended at once")
            }
            try directory.write(ContainerRecord(id: id, pid: pid, startTime: startTime, bundle: bundle, rootfs: spec.root.path,
                                                created: Timestamp.now(), annotations: spec.annotations))
            if let pidFile = arguments.options["pid-file"] {
                try FileIO.write(pidFile, Array("\(pid)".utf8), mode: 0o644)
            }
        } catch {
            // A VM process whose container is gone would wait for its start forever.
            if let vmProcess {
                Glibc.kill(vmProcess, SIGKILL)
                var status: Int32 = 0
                waitpid(vmProcess, &status, 0)
            }
            directory.remove()
            throw error
        }
    }

    /// A new pseudo-terminal: the master goes to the caller over `socket`, the slave
    /// becomes the VM process's terminal.
    private static func openTerminal(socket: String, size: (width: UInt16, height: UInt16)?) throws(OCIError) -> Int32 {
        var slave: Int32 = -1
        let master = clinux_open_pty(&slave)
        guard master >= 0 else { throw .failed("cannot open a pseudo-terminal: \(String(cString: strerror(-master)))") }
        defer { close(master) }
        if let size, size.width > 0, size.height > 0 {
            var window = winsize(ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0)
            _ = clinux_ioctl_ptr(master, CLINUX_TIOCSWINSZ, &window)
        }
        let sent = clinux_send_fd(socket, master)
        guard sent == 0 else {
            close(slave)
            throw .failed("cannot send the terminal to the console socket \(socket): \(String(cString: strerror(-sent)))")
        }
        return slave
    }

    /// Starts the VM process (`microvm-oci vm`) and waits until it has built the VM, or
    /// reports why it could not.
    private static func spawnVM(root: String, bundle: String, allowedImages: [String], id: String, terminal: Int32?) throws(OCIError) -> Int32 {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw .failed("pipe: \(errorText())") }
        // The VM process gets its end as descriptor 3; nothing else may inherit either.
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let executable = selfPath()
        let argv = [executable, "--root", root] + allowedImages.flatMap { ["--allowed-images", absolute($0)] }
            + ["vm", "--bundle", bundle, "--ready-fd", "3", id]
        var cStrings = argv.map { strdup($0) }
        cStrings.append(nil)
        defer { for pointer in cStrings { free(pointer) } }
        let pid = clinux_spawn_session(executable, &cStrings, pipeFDs[1], terminal ?? -1)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard pid > 0 else { throw .failed("cannot start \(executable): \(String(cString: strerror(-pid)))") }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while answer.count < 4096 {
            let count = buffer.withUnsafeMutableBytes { read(pipeFDs[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        let text = String(decoding: answer, as: UTF8.self)
        guard text == VMProcess.readyLine else {
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            let message = text.split(separator: "\n").first.map(String.init) ?? "the VM process ended before its VM was built"
            throw .failed(message)
        }
        return pid
    }

    private func start() throws(OCIError) {
        let id = try arguments.containerID()
        let directory = try store.open(id, exclusive: true)
        var record = try directory.read()
        let status = record.status()
        guard status == .created else { throw .wrongState(id: id, status: status.rawValue, command: "start") }
        let fifo = open(directory.paths.startFIFO, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fifo >= 0 else { throw .failed("cannot open \(directory.paths.startFIFO): \(Self.errorText())") }
        defer { close(fifo) }
        var waited = 0
        var byte: UInt8 = 0
        while true {
            var descriptor = pollfd(fd: fifo, events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 100) > 0, read(fifo, &byte, 1) == 1 { break }
            waited += 100
            guard record.status() == .created, waited < Self.waitMilliseconds else {
                throw .failed("container \(id): the VM process did not take the start")
            }
        }
        unlink(directory.paths.startFIFO)
        record.started = true
        try directory.write(record)
    }

    private func state() throws(OCIError) {
        let id = try arguments.containerID()
        let directory = try store.open(id, exclusive: false)
        let record = try directory.read()
        print(record.ociState(record.status()).encoded)
    }

    private func kill() throws(OCIError) {
        let id = try arguments.containerID(extra: 1)
        let signal = try Self.signalNumber(arguments.operands.count > 1 ? arguments.operands[1] : "TERM")
        let directory = try store.open(id, exclusive: false)
        let record = try directory.read()
        let status = record.status()
        guard status != .stopped else { throw .wrongState(id: id, status: status.rawValue, command: "kill") }
        guard Glibc.kill(record.pid, signal) == 0 else { throw .failed("kill \(record.pid): \(Self.errorText())") }
    }

    private func delete() throws(OCIError) {
        let id = try arguments.containerID()
        let directory = try store.open(id, exclusive: true)
        let record = try directory.read()
        let status = record.status()
        if (status == .running || status == .paused) && !arguments.flags.contains("force") {
            throw .wrongState(id: id, status: status.rawValue, command: "delete")
        }
        if status != .stopped {
            Glibc.kill(record.pid, SIGKILL)
            var waited = 0
            while record.status() != .stopped {
                guard waited < Self.waitMilliseconds else { throw .failed("container \(id): the VM process \(record.pid) does not end") }
                usleep(10_000)
                waited += 10
            }
        }
        directory.remove()
    }

    /// Pauses (or resumes) the VM through its control socket: its vCPUs stop where they
    /// are, the guest's clock is told, and nothing runs in it until `resume`.
    private func pause(_ pausing: Bool) throws(OCIError) {
        let id = try arguments.containerID()
        let directory = try store.open(id, exclusive: true)
        var record = try directory.read()
        let status = record.status()
        guard status == (pausing ? .running : .paused) else {
            throw .wrongState(id: id, status: status.rawValue, command: pausing ? "pause" : "resume")
        }
        let answer: JSONObject
        do {
            answer = try ControlClient.send(pausing ? .pause : .resume, to: directory.paths.controlSocket)
        } catch {
            throw .failed("container \(id): the VM's control socket: \(error)")
        }
        guard answer["ok"] == .bool(true) else {
            let reason = if case .string(let message)? = answer["error"] { message } else { answer.encoded }
            throw .failed("container \(id): the VM did not \(pausing ? "pause" : "resume"): \(reason)")
        }
        record.paused = pausing
        try directory.write(record)
    }

    private func features() throws(OCIError) {
        let annotations: [(key: String, value: JSONValue)] = [
            (ContainerPlan.Annotation.memory, .string("guest RAM, K/M/G suffix (default 256M)")),
            (ContainerPlan.Annotation.cpus, .string("vCPUs (default 1)")),
            (ContainerPlan.Annotation.kernel, .string("the kernel to boot, from a directory named with --allowed-images")),
            (ContainerPlan.Annotation.initrd, .string("the initrd, with microvm's /init and oci-init, from a directory named with --allowed-images")),
            (ContainerPlan.Annotation.network, .string("passt or none")),
            (ContainerPlan.Annotation.cmdline, .string("the kernel command line")),
            (ContainerPlan.Annotation.template, .string("false: boot instead of restoring the template of the container's machine")),
        ]
        let features = JSONValue.object([
            ("ociVersionMin", .string("1.0.0")), ("ociVersionMax", .string("1.1.0")), ("hooks", .array([])),
            ("mountOptions", .array(["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "bind", "rbind"].map { .string($0) })),
            ("linux", .object([("namespaces", .array([])), ("capabilities", .array([])), ("cgroup", .object([("v1", .bool(false)), ("v2", .bool(false))])),
                               ("seccomp", .object([("enabled", .bool(false))])), ("apparmor", .object([("enabled", .bool(false))])),
                               ("selinux", .object([("enabled", .bool(false))]))])),
            ("annotations", .object(annotations)),
        ])
        print(features.encoded)
    }

    /// `KILL`, `SIGKILL` or `9`.
    static func signalNumber(_ text: String) throws(OCIError) -> Int32 {
        if let number = Int32(text), (1...64).contains(number) { return number }
        let names: [String: Int32] = [
            "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "BUS": SIGBUS,
            "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM,
            "TERM": SIGTERM, "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN, "TTOU": SIGTTOU,
            "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH, "IO": SIGIO,
            "PWR": SIGPWR, "SYS": SIGSYS,
        ]
        let name = text.uppercased().hasPrefix("SIG") ? String(text.uppercased().dropFirst(3)) : text.uppercased()
        guard let number = names[name] else { throw .usage("kill: unknown signal \(text)") }
        return number
    }

    static func absolute(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func selfPath() -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { readlink("/proc/self/exe", $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count - 1) }
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : CommandLine.arguments[0]
    }

    static func errorText() -> String { String(cString: strerror(errno)) }
}
