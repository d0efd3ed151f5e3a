import ArgumentParser
import Glibc
import VMM

/// `microvm run`: boot a kernel with an initrd and connect its serial console.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a Linux kernel (bzImage or ELF vmlinux) with its console on this terminal.",
        discussion: """
            Without --kernel, boots the minimal Linux and busybox initrd that scripts/build-guest builds.
            On a terminal, Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A. Exits 0 when the guest reboots.
            """
    )

    @OptionGroup var machine: MachineOptions

    @OptionGroup var session: SessionOptions

    @Option(help: ArgumentHelp("Attach a raw disk image as the next virtio-blk disk (/dev/vda, /dev/vdb, …); ,ro attaches it read-only. Repeatable.", valueName: "path[,ro]"))
    var disk: [String] = []

    @Option(help: ArgumentHelp("Root filesystem: an ext4 image (attached as /dev/vda), or a directory (see --rootfs-mode), mounted as / for the command. ,ro mounts it read-only.", valueName: "path[,ro]"))
    var rootfs: String?

    @Option(help: ArgumentHelp("How a directory given as --rootfs reaches the guest: 9p shares it as it is (no image to build); ext4 makes a cached ext4 image of it.", valueName: "9p|ext4"))
    var rootfsMode: RootFilesystem.Mode = .share

    @Option(help: ArgumentHelp("Share a host directory over virtio-9p; the guest's /init mounts it at /mnt/TAG (TAG defaults to the directory's name). ,ro shares it read-only; ,suid keeps the setuid and setgid bits the guest gives files (taken off otherwise). Repeatable.", valueName: "dir[:tag][,ro][,suid]"))
    var share: [String] = []

    @Option(help: ArgumentHelp("A virtio-net device: passt starts passt for this VM (no root needed; passt's DHCP configures the guest, and the host is reachable at the gateway's address), passt=SOCKET uses a passt listening there, tap=NAME an existing tap device.", valueName: "passt|passt=socket|tap=name"))
    var net: String?

    @Option(help: ArgumentHelp("The network device's MAC address (default: one derived from the VM's backend and disks, the same on every run).", valueName: "xx:xx:xx:xx:xx:xx"))
    var mac: String?

    @Option(help: ArgumentHelp("A virtio-vsock device (guest CID 3) with Firecracker's host side: host programs connect to the Unix socket PATH and send \"CONNECT <port>\\n\"; a guest connecting to the host (CID 2) port P reaches the socket PATH_P.", valueName: "path"))
    var vsock: String?

    @Flag(help: .hidden)
    var seccompSelftest = false

    @Flag(help: ArgumentHelp("Boot the kernel instead of restoring a template of this machine (a snapshot of it booted once, kept in the cache; see `microvm template`)."))
    var noTemplate = false

    @Option(help: ArgumentHelp("An environment variable for the command, from a template's work order. Repeatable.", valueName: "name=value"))
    var env: [String] = []

    @Option(help: ArgumentHelp("The command's working directory, from a template's work order.", valueName: "dir"))
    var workdir: String?

    @Option(help: ArgumentHelp("The guest's host name, from a template's work order.", valueName: "name"))
    var hostname: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("After --: the command the guest runs, its arguments passed through unchanged; microvm exits with its status.", valueName: "command"))
    var command: [String] = []

    @Flag(help: ArgumentHelp("On exit, print start-up timestamps as JSON on stderr: from main to VM built, first KVM_RUN, first console byte, the initrd's \"\(BootEvents.guestInitMarker)\" line, and exit; and the vCPUs' exits to userspace by reason."))
    var bootTimer = false

    @Option(help: ArgumentHelp("Sample the vCPUs' instruction pointers for the whole run; write a flat profile of the guest's functions to this file, the folded stacks flame-graph tools read to FILE.folded, and a summary on stderr.", valueName: "file"))
    var profile: String?

    @Option(help: ArgumentHelp("Profile samples per second and vCPU (default \(GuestProfiler.defaultRate)).", valueName: "hz"))
    var profileRate: Int = GuestProfiler.defaultRate

    @Option(help: ArgumentHelp("The symbols that name profiled addresses: an ELF file or a System.map (default: the kernel, when it is an ELF vmlinux; a bzImage needs its System.map).", valueName: "path"))
    var symbols: String?

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        // The self-test makes a call off the vCPU thread's list while the guest runs (and the
        // terminal is raw): the process must end with the report and the terminal put back.
        let selftest: (@Sendable () -> Void)? = seccompSelftest ? { @Sendable in _ = getppid() } : nil
        let events = BootEvents(marker: bootTimer ? BootEvents.guestInitMarker : nil, onFirstOutput: selftest)
        do {
            let exit = try boot(events: events)
            if let message = exit.message {
                report(message)
            }
            if bootTimer {
                report("boot-timer: \(events.json)")
            }
            throw ExitCode(exit.status)
        } catch let error as ExitCode {
            throw error
        } catch {
            report("error: \(error)")
            throw ExitCode(1)
        }
    }

    private func boot(events: BootEvents) throws -> VMExit {
        let (kernelPath, initrdPath) = try machine.images(quiet: session.quiet)
        var disks = disk.map(Self.parseDisk)
        var shares = try share.map { try Self.parseShare($0) }
        if let rootfs {
            let root = Self.parseDisk(rootfs)
            if rootfsMode == .share, RootFilesystem.isDirectory(root.path) {
                shares.append(VMConfiguration.Share(path: root.path, tag: VMConfiguration.Share.rootTag, readOnly: root.readOnly))
            } else {
                let image = try RootFilesystem.image(for: root.path) { line in if !session.quiet { report(line) } }
                disks.insert(VMConfiguration.Disk(path: image, readOnly: root.readOnly), at: 0)
            }
        }
        if !shares.isEmpty { Self.raiseOpenFileLimit() }
        var configuration = VMConfiguration(
            kernel: kernelPath,
            initrd: initrdPath,
            commandLine: machine.cmdline.map { KernelCommandLine($0) },
            memorySize: try MemorySize.parse(machine.memory),
            vcpuCount: machine.cpus,
            console: machine.console,
            consoleSocket: session.consoleSocket,
            consoleLog: session.consoleLog,
            disks: disks,
            rootOnFirstDisk: rootfs != nil && disks.count > disk.count,
            shares: shares,
            command: command.isEmpty ? nil : command,
            seccomp: !session.noSeccomp,
            controlSocket: session.apiSocket,
            acpi: !machine.noACPI,
            network: try net.map(Self.parseNetwork),
            mac: try mac.map(Self.parseMAC),
            entropy: machine.noRNG ? nil : .standard,
            vsock: vsock
        )
        configuration.profiling = try profiling(kernel: kernelPath)
        configuration.consoleLogLimit = try session.consoleLogLimit()
        let vm: MicroVM
        if !noTemplate, !seccompSelftest, configuration.templateObstacle == nil {
            var order = configuration.workOrder
            order.environment = env
            order.workingDirectory = workdir
            order.hostname = hostname
            vm = try MicroVM.fromTemplate(configuration.templateMachine, session: configuration.session, order: order,
                                          events: events) { line in if !session.quiet { report(line) } }
        } else {
            if !env.isEmpty || workdir != nil || hostname != nil {
                let reason = noTemplate ? "--no-template" : configuration.templateObstacle ?? "the seccomp self-test"
                throw BadArgument(description: "--env, --workdir and --hostname reach the guest in a template's work order, and this run boots (\(reason))")
            }
            vm = try MicroVM(configuration, events: events)
        }
        // Opened before the jail, which hides their directory.
        let outputs = try profile.map { path throws(OutputFile.Error) in
            let log = session.consoleLog.flatMap { log in InputFile.Identity.of(log).map { [(role: "the console log \(log)", identity: $0)] } } ?? []
            return try ProfileFiles(path: path, others: vm.inputs + log)
        }
        if session.jail { try vm.enterJail() }
        session.announceConsole()
        let exit = vm.run()
        if let outputs, let result = vm.guestProfile {
            do {
                try outputs.write(result)
            } catch {
                if let message = exit.message { report(message) }
                throw error
            }
            report(result.flat(limit: 10).split(separator: "\n").map { "profile: \($0)" }.joined(separator: "\n"))
        }
        return exit
    }

    private func profiling(kernel: String) throws -> VMConfiguration.Profiling? {
        guard profile != nil else {
            if symbols != nil { throw BadArgument(description: "--symbols names a profile's functions; give --profile FILE too") }
            if profileRate != GuestProfiler.defaultRate { throw BadArgument(description: "--profile-rate needs --profile FILE") }
            return nil
        }
        guard GuestProfiler.rates.contains(profileRate) else {
            throw BadArgument(description: "--profile-rate \(profileRate): give \(GuestProfiler.rates.lowerBound) to \(GuestProfiler.rates.upperBound) samples per second")
        }
        if symbols == nil, !SymbolTable.isELF(path: kernel) {
            throw BadArgument(description: "--profile: \(kernel) is not an ELF vmlinux, so it has no symbol table; give its System.map with --symbols")
        }
        let file = symbols ?? kernel
        return VMConfiguration.Profiling(rate: profileRate, symbols: try SymbolTable.load(path: file), symbolsFile: file)
    }
}

extension RunCommand {
    /// `PATH` or `PATH,ro`.
    static func parseDisk(_ argument: String) -> VMConfiguration.Disk {
        argument.hasSuffix(",ro")
            ? VMConfiguration.Disk(path: String(argument.dropLast(3)), readOnly: true)
            : VMConfiguration.Disk(path: argument)
    }
}

extension RunCommand {
    /// An option's value that does not parse: the message names the option.
    struct BadArgument: Error, CustomStringConvertible {
        let description: String
    }

    /// `passt`, `passt=SOCKET` or `tap=NAME`.
    static func parseNetwork(_ argument: String) throws -> VMConfiguration.Network {
        if argument == "passt" { return .passt(socket: nil) }
        if argument.hasPrefix("passt="), argument.count > 6 { return .passt(socket: String(argument.dropFirst(6))) }
        if argument.hasPrefix("tap="), argument.count > 4 { return .tap(name: String(argument.dropFirst(4))) }
        throw BadArgument(description: "--net \(argument): expected passt, passt=SOCKET or tap=NAME")
    }

    /// Six hexadecimal bytes separated by colons; a unicast address.
    static func parseMAC(_ argument: String) throws -> [UInt8] {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard parts.count == 6, bytes.count == 6 else {
            throw BadArgument(description: "--mac \(argument): expected six hexadecimal bytes, as 02:12:34:56:78:9a")
        }
        guard bytes[0] & 1 == 0 else { throw BadArgument(description: "--mac \(argument): a multicast address (the first byte is odd)") }
        return bytes
    }

    /// `DIR`, `DIR:TAG`, either with `,ro` and `,suid` (in either order). The tag defaults
    /// to the directory's last name. The root share's tag is `--rootfs`'s own, except for a
    /// restore, which binds it again.
    static func parseShare(_ argument: String, allowingRootTag: Bool = false) throws -> VMConfiguration.Share {
        var text = Substring(argument)
        var readOnly = false
        var keepsSetID = false
        while true {
            if !readOnly, text.hasSuffix(",ro") {
                readOnly = true
                text = text.dropLast(3)
            } else if !keepsSetID, text.hasSuffix(",suid") {
                keepsSetID = true
                text = text.dropLast(5)
            } else {
                break
            }
        }
        var path = String(text)
        var tag: String?
        if let colon = text.lastIndex(of: ":") {
            path = String(text[..<colon])
            tag = String(text[text.index(after: colon)...])
        }
        guard !path.isEmpty else { throw BadArgument(description: "--share \(argument): no directory given") }
        let name = path.split(separator: "/").last.map(String.init) ?? ""
        guard let tag = tag ?? (name.isEmpty ? nil : name) else {
            throw BadArgument(description: "--share \(argument): give the share a tag with DIR:TAG")
        }
        guard tag != VMConfiguration.Share.rootTag || allowingRootTag else {
            throw BadArgument(description: "--share \(argument): the tag \(tag) is reserved for --rootfs")
        }
        return VMConfiguration.Share(path: path, tag: tag, readOnly: readOnly, keepsSetID: keepsSetID)
    }

    /// Each share may keep up to `NinePServer.maximumOpenFiles` files open for the guest,
    /// more than the usual soft limit of 1024 descriptors allows.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(RLIMIT_NOFILE_VALUE, &limit)
    }

    private static var RLIMIT_NOFILE_VALUE: __rlimit_resource_t { __rlimit_resource_t(RLIMIT_NOFILE.rawValue) }
}

extension VMConfiguration.ConsoleDevice: ExpressibleByArgument {}
extension RootFilesystem.Mode: ExpressibleByArgument {}
