import Arch
import Boot
import Devices
import Glibc
import KVM
import Memory

/// Pausing, snapshots and restoring (docs/snapshots.md). Everything here runs on the
/// event loop's thread, which is the only one that answers the control socket.
extension MicroVM {
    /// How a restored VM's console is connected; the rest comes from the snapshot.
    public struct RestoreOptions: Sendable {
        public var consoleSocket: String?
        public var consoleOutput: Int32
        public var consoleLog: String?
        public var consoleLogLimit: UInt64
        public var consoleInput: Bool
        public var seccomp: Bool
        public var controlSocket: String?

        public init(consoleSocket: String? = nil, consoleOutput: Int32 = STDOUT_FILENO, consoleLog: String? = nil,
                    consoleLogLimit: UInt64 = VMConfiguration.defaultConsoleLogLimit,
                    consoleInput: Bool = true, seccomp: Bool = false, controlSocket: String? = nil) {
            self.consoleSocket = consoleSocket
            self.consoleOutput = consoleOutput
            self.consoleLog = consoleLog
            self.consoleLogLimit = consoleLogLimit
            self.consoleInput = consoleInput
            self.seccomp = seccomp
            self.controlSocket = controlSocket
        }
    }

    /// Builds a VM from the snapshot at `path` (and its memory file beside it), ready to
    /// `run()` from where it was saved. Refuses a damaged snapshot, disks that changed
    /// since, and (once KVM is open, in `init`) a snapshot from another host's CPU.
    public static func restore(from path: String, options: RestoreOptions, profile: HostProfile = .current,
                               events: BootEvents = BootEvents()) throws -> MicroVM {
        let snapshot = try VMSnapshot(SnapshotFile.decode(try readFile(path)))
        for disk in snapshot.disks {
            var status = stat()
            guard stat(disk.path, &status) == 0 else { throw SnapshotError.diskChanged(path: disk.path, reason: "it cannot be found") }
            guard UInt64(status.st_size) == disk.size else {
                throw SnapshotError.diskChanged(path: disk.path, reason: "its size is \(status.st_size) bytes, not \(disk.size)")
            }
            guard Int64(status.st_mtim.tv_sec) == disk.modified, Int64(status.st_mtim.tv_nsec) == disk.modifiedNanoseconds else {
                throw SnapshotError.diskChanged(path: disk.path, reason: "it was modified after the snapshot")
            }
        }
        let memoryPath = directory(of: path) + "/" + snapshot.memoryFile
        let memory = open(memoryPath, O_RDONLY | O_CLOEXEC)
        guard memory >= 0 else { throw SnapshotError.file(path: memoryPath, action: "open the memory file", errno: errno) }
        // The mapping keeps the file; the descriptor is not needed after it.
        defer { close(memory) }
        let configuration = VMConfiguration(
            kernel: snapshot.kernel, commandLine: KernelCommandLine(snapshot.commandLine), memorySize: snapshot.memorySize,
            vcpuCount: snapshot.vcpuCount, console: snapshot.console, consoleSocket: options.consoleSocket,
            consoleOutput: options.consoleOutput, consoleLog: options.consoleLog,
            consoleLogLimit: options.consoleLogLimit, consoleInput: options.consoleInput,
            disks: snapshot.disks.map { VMConfiguration.Disk(path: $0.path, readOnly: $0.readOnly) }, shares: snapshot.shares,
            seccomp: options.seccomp, controlSocket: options.controlSocket, acpi: snapshot.acpi, entropy: snapshot.entropy)
        return try MicroVM(configuration, profile: profile, events: events, restoring: (snapshot, memory))
    }

    /// Creates the vCPUs and puts back the VM's, the vCPUs' and the devices' state.
    static func restore(_ snapshot: VMSnapshot, vm: VirtualMachine, devices: [StatefulDevice]) throws -> [VirtualCPU] {
        var cpus: [VirtualCPU] = []
        for id in 0..<UInt32(snapshot.vcpuCount) { cpus.append(try vm.createVirtualCPU(id: id)) }
        try vm.restoreState(snapshot.vm)
        for (cpu, state) in zip(cpus, snapshot.cpus) {
            do throws(KVMError) {
                try cpu.restoreState(state)
            } catch {
                throw SnapshotError.state("vCPU \(cpu.id): \(error.description)")
            }
        }
        guard snapshot.devices.count == devices.count else {
            throw SnapshotError.malformed("\(snapshot.devices.count) device states for \(devices.count) devices")
        }
        for (device, state) in zip(devices, snapshot.devices) {
            var reader = StateReader(state)
            do throws(StateError) {
                try device.restoreState(from: &reader)
                try reader.finish("device state")
            } catch {
                throw SnapshotError.malformed(error.description)
            }
        }
        return cpus
    }

    /// Answers one control request.
    func answer(_ parsed: Result<ControlRequest, JSONObject.ParseError>) -> JSONObject {
        let request: ControlRequest
        switch parsed {
        case .success(let value): request = value
        case .failure(let error): return Self.failure(error.description)
        }
        switch request {
        case .status:
            return JSONObject([("ok", .bool(true)), ("state", .string(paused ? "paused" : "running")),
                               ("vcpus", .number(Double(cpus.count))), ("memory", .number(Double(memory.size)))])
        case .pause:
            do throws(SnapshotError) {
                try pause()
            } catch {
                return Self.failure(error.description)
            }
            return JSONObject([("ok", .bool(true)), ("state", .string("paused"))])
        case .resume:
            resume()
            return JSONObject([("ok", .bool(true)), ("state", .string("running"))])
        case .stop:
            control.stop(.stopRequested)
            return JSONObject([("ok", .bool(true)), ("state", .string("stopping"))])
        case .snapshot(let path):
            let wasPaused = paused
            let start = Self.now()
            do throws(SnapshotError) {
                try pause()
                defer { if !wasPaused { resume() } }
                let bytes = try snapshot(to: path)
                return JSONObject([("ok", .bool(true)), ("path", .string(path)), ("memory_path", .string(Self.memoryPath(for: path))),
                                   ("state_bytes", .number(Double(bytes))), ("milliseconds", .number(Double((Self.now() - start) / 1_000_000)))])
            } catch {
                return Self.failure(error.description)
            }
        }
    }

    private static func failure(_ message: String) -> JSONObject {
        JSONObject([("ok", .bool(false)), ("error", .string(message))])
    }

    /// Stops every vCPU at a point where its state is whole, and tells the guest's kvmclock.
    func pause() throws(SnapshotError) {
        guard !paused else { return }
        guard control.pause(vcpus: cpus.count) else {
            control.resume()
            throw .notPaused(control.isStopping ? "the VM is stopping" : "a vCPU did not leave the guest within 5 s")
        }
        for cpu in cpus { cpu.notePaused() }
        paused = true
    }

    func resume() {
        guard paused else { return }
        paused = false
        control.resume()
    }

    static func memoryPath(for path: String) -> String { path + ".mem" }

    /// Writes the paused VM to `path` and `path.mem`, each first under a temporary name
    /// and then renamed: a VM restored from an older snapshot at the same path keeps
    /// mapping the file it opened. Returns the state file's size.
    func snapshot(to path: String) throws(SnapshotError) -> Int {
        guard configuration.network == nil, configuration.vsock == nil else { throw .networkDevice }
        let memoryPath = Self.memoryPath(for: path)
        let msrIndices: [UInt32]
        let state: VMSnapshot
        do throws(KVMError) {
            msrIndices = try hypervisor.savedMSRIndices()
            let cpuStates = try cpus.map { cpu throws(KVMError) in try cpu.saveState(msrIndices: msrIndices) }
            let disks = self.disks.map { disk in
                let status = disk.status()
                return VMSnapshot.Disk(path: disk.path, readOnly: disk.isReadOnly, size: UInt64(status.st_size),
                                       modified: Int64(status.st_mtim.tv_sec), modifiedNanoseconds: Int64(status.st_mtim.tv_nsec))
            }
            state = VMSnapshot(
                memorySize: configuration.memorySize, vcpuCount: cpus.count, console: configuration.console, disks: disks,
                shares: configuration.shares, acpi: configuration.acpi, entropy: configuration.entropy, kernel: configuration.kernel, commandLine: configuration.commandLine.text,
                hostCPU: VMSnapshot.hostFingerprint(try hypervisor.supportedCPUID()),
                memoryFile: Self.baseName(memoryPath), vm: try vm.saveState(), cpus: cpuStates,
                devices: devices.map { device in
                    var writer = StateWriter()
                    device.saveState(into: &writer)
                    return writer.bytes
                },
                exitStatus: reported.value)
        } catch {
            throw .state("saving KVM state: \(error.description)")
        }
        try Self.replace(memoryPath) { fd throws(SnapshotError) in
            do throws(GuestMemoryError) {
                try memory.save(to: fd)
            } catch {
                throw .file(path: memoryPath, action: "write", errno: EIO)
            }
        }
        let bytes = state.file.encoded()
        try Self.replace(path) { fd throws(SnapshotError) in
            var written = 0
            while written < bytes.count {
                let result = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw .file(path: path, action: "write", errno: errno) }
                written += result
            }
        }
        return bytes.count
    }

    /// Writes a new file with `body` under a temporary name beside `path`, then renames it over `path`.
    private static func replace(_ path: String, _ body: (Int32) throws(SnapshotError) -> Void) throws(SnapshotError) {
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .file(path: temporary, action: "create", errno: errno) }
        do throws(SnapshotError) {
            try body(fd)
            guard fsync(fd) == 0 else { throw .file(path: temporary, action: "sync", errno: errno) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = errno
            unlink(temporary)
            throw .file(path: path, action: "rename \(temporary) to", errno: error)
        }
    }

    private static func readFile(_ path: String) throws(SnapshotError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .file(path: path, action: "open", errno: errno) }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { throw .notASnapshot }
        // The state is small (its sections are bounded); a huge file is not a snapshot.
        guard status.st_size <= off_t(SnapshotFile.maximumSectionLength * 4) else { throw .notASnapshot }
        var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
        var done = 0
        while done < bytes.count {
            let result = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw result == 0 ? .truncated : .file(path: path, action: "read", errno: errno) }
            done += result
        }
        return bytes
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func baseName(_ path: String) -> String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
