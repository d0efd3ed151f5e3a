import Arch
import CLinux
import Devices
import Glibc
import Memory
import Synchronization

/// Templates (docs/templates.md): a machine booted once until its /init waits for a work
/// order, snapshotted into the `TemplateStore`, and restored for each run, which binds its
/// own session and hands the guest its order.
extension MicroVM {
    public enum TemplateError: Error, CustomStringConvertible {
        case noWorkOrderPort
        case guestEnded(String)
        case snapshot(SnapshotError)
        case order(WorkOrder.Error)
        case orderNotTaken

        public var description: String {
            switch self {
            case .noWorkOrderPort: "the machine has no work-order port, so it cannot be a template"
            case .guestEnded(let how): "the template's guest ended before its /init waited for a work order (\(how)); is the initrd microvm's?"
            case .snapshot(let error): "cannot snapshot the template: \(error.description)"
            case .order(let error): error.description
            case .orderNotTaken: "the work order is more than the work-order port holds"
            }
        }
    }

    /// Runs the freshly built machine until its /init says it waits for a work order, then
    /// snapshots it to `path` (and `path.mem`) and ends it.
    func runUntilWaiting(snapshotTo path: String) throws {
        guard let port = workOrder else { throw TemplateError.noWorkOrderPort }
        let outcome = Mutex<Result<Void, SnapshotError>?>(nil)
        let deviceIO = self.deviceIO
        port.whenWaiting { [unowned self] in
            // Snapshots are taken on the event loop's thread, which owns pausing.
            deviceIO.schedule(after: 0) { [unowned self] in
                do throws(SnapshotError) {
                    try pause()
                    _ = try snapshot(to: path)
                    outcome.withLock { $0 = .success(()) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
                control.stop(.stopRequested)
            }
        }
        snapshotsWhenWaiting = true
        let exit = run()
        switch outcome.withLock({ $0 }) {
        case .success: return
        case .failure(let error): throw TemplateError.snapshot(error)
        case nil: throw TemplateError.guestEnded(exit.message ?? "status \(exit.status)")
        }
    }

    /// Builds the template of `machine` in `store` unless it is there, under the store's
    /// lock; returns it and whether this call built it. `progress` gets one line before a
    /// build and one after it.
    public static func template(of machine: MachineSpec, in store: TemplateStore, seccomp: Bool = true, profile: HostProfile = .current,
                                progress: (String) -> Void) throws -> (template: TemplateStore.Template, built: Bool) {
        try store.prepare()
        let key = TemplateStore.key(for: machine)
        if let template = try store.template(key) { return (template, false) }
        return try store.locked(key) {
            if let template = try store.template(key) { return (template, false) }
            progress("booting the guest once to make a template (\(key))…")
            let started = MonotonicClock.nanoseconds()
            let staging = try store.staging(key)
            do {
                let log = open(staging + "/boot.log", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard log >= 0 else { throw TemplateStore.Error.file(path: staging + "/boot.log", action: "create", errno: errno) }
                defer { close(log) }
                let session = Session(consoleOutput: log, consoleInput: false, seccomp: seccomp)
                let vm = try MicroVM(machine: machine, session: session, profile: profile, events: BootEvents())
                // On a thread of its own: the event loop's seccomp filter stays with its thread,
                // and this one goes on to publish the template.
                let outcome = Mutex<Result<Void, any Error>>(.success(()))
                let thread = try NativeThread(name: "microvm-template") {
                    do {
                        try vm.runUntilWaiting(snapshotTo: staging + "/vm.snap")
                    } catch {
                        outcome.withLock { $0 = .failure(error) }
                    }
                }
                thread.join(every: 1000) {}
                try outcome.withLock { $0 }.get()
            } catch {
                // What the guest printed says why it never waited: its last lines go with the error.
                let lines = Self.tail(of: staging + "/boot.log")
                try? TemplateStore.removeTree(staging)
                if case TemplateError.guestEnded(let how) = error, !lines.isEmpty {
                    throw TemplateError.guestEnded(how + "; its console ended with: " + lines)
                }
                throw error
            }
            let seconds = Double((MonotonicClock.nanoseconds() - started) / 1_000_000) / 1000
            var info = [("kernel", machine.kernel)] + machine.initrds.map { ("initrd", $0) }
            info += [("memory", "\(machine.memorySize >> 20)M"), ("cpus", "\(machine.vcpuCount)"),
                     ("devices", machine.devices.map(\.kind).joined(separator: ",")), ("created", "\(time(nil))"),
                     ("build-seconds", "\(seconds)")]
            try store.publish(staging, as: key, info: info)
            progress("template \(key) made in \(seconds) s")
            guard let template = try store.template(key) else { throw TemplateStore.Error.unknown(key) }
            return (template, true)
        }
    }

    /// Restores the template of `machine` (making it first if needed, and again if the one
    /// there cannot be used), binds `session`, and hands the guest `order`.
    public static func fromTemplate(_ machine: MachineSpec, session: Session, order: WorkOrder, store: TemplateStore = .standard,
                                    profile: HostProfile = .current, events: BootEvents = BootEvents(),
                                    progress: (String) -> Void) throws -> MicroVM {
        // Checked now, sent when the VM runs (`run()`), with the clock of that moment: a
        // build, or microvm-oci's wait between create and start, must not age it.
        do throws(WorkOrder.Error) {
            _ = try order.encoded(clock: timespec(), entropy: [])
        } catch {
            throw TemplateError.order(error)
        }
        var (template, built) = try template(of: machine, in: store, seccomp: session.seccomp, profile: profile, progress: progress)
        let vm: MicroVM
        do {
            vm = try restoreTemplate(template, session: session, profile: profile, events: events)
        } catch where !built && SnapshotError.meansDamaged(error) {
            progress("the template \(template.key) cannot be used (\(error)); making it again")
            try store.locked(template.key) { try store.remove(template.key) }
            (template, built) = try Self.template(of: machine, in: store, seccomp: session.seccomp, profile: profile, progress: progress)
            vm = try restoreTemplate(template, session: session, profile: profile, events: events)
        }
        guard vm.workOrder != nil else { throw TemplateError.noWorkOrderPort }
        vm.pendingOrder = order
        return vm
    }

    /// The last three lines of a boot's console output at `path`, joined with " | ".
    private static func tail(of path: String) -> String {
        guard let file = try? InputFile(path, kinds: .regular) else { return "" }
        let size = Int(file.status.st_size)
        let count = min(size, 4096)
        var bytes = [UInt8](repeating: 0, count: count)
        let read = bytes.withUnsafeMutableBytes { pread(file.fd, $0.baseAddress, count, off_t(size - count)) }
        let text = String(decoding: bytes.prefix(max(0, read)), as: UTF8.self)
        return text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).suffix(3).joined(separator: " | ")
    }

    /// Hands the waiting guest its order, with the clock and entropy of now; a run calls it
    /// before the vCPUs start.
    func sendPendingOrder() throws(TemplateError) {
        guard let order = pendingOrder, let port = workOrder else { return }
        pendingOrder = nil
        var clock = timespec()
        clock_gettime(CLOCK_REALTIME, &clock)
        var entropy = [UInt8](repeating: 0, count: 64)
        _ = entropy.withUnsafeMutableBytes { getrandom($0.baseAddress, $0.count, 0) }
        let bytes: [UInt8]
        do throws(WorkOrder.Error) {
            bytes = try order.encoded(clock: clock, entropy: entropy)
        } catch {
            throw .order(error)
        }
        guard port.send(bytes) else { throw .orderNotTaken }
    }

    private static func restoreTemplate(_ template: TemplateStore.Template, session: Session, profile: HostProfile, events: BootEvents) throws -> MicroVM {
        return try MicroVM.restore(from: template.snapshot, session: session, profile: profile, events: events)
    }
}

extension SnapshotError {
    /// Whether `error`, from a restore, says the snapshot's files are not what a template's
    /// should be (missing, damaged, from another version or host): it is made again.
    static func meansDamaged(_ error: any Error) -> Bool {
        if error is InputFile.Error { return true }
        switch error as? SnapshotError {
        case .notASnapshot, .truncated, .checksum, .version, .malformed, .missingSection, .memoryFile, .otherHost, .state: return true
        default: return false
        }
    }
}
