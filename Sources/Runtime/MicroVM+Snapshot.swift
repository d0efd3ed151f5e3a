import Arch
import Boot
import Devices
import Glibc
import KVM
import Memory

/// Pausing, snapshots and restoring (docs/snapshots.md). Everything here runs on the
/// event loop's thread, which is the only one that answers the control socket.
extension MicroVM {
    /// Builds a VM from the snapshot at `path` (and its memory file `path.mem`), ready to
    /// `run()` from where it was saved. Refuses a damaged snapshot, disks and shares that do
    /// not match the saved ones or changed since, and (once KVM is open, in `init`) a
    /// snapshot from another host's CPU.
    public static func restore(from path: String, session: Session, profile: HostProfile = .current,
                               events: BootEvents = BootEvents()) throws -> MicroVM {
        let snapshot = try VMSnapshot(SnapshotFile.decode(try readStateFile(path)))
        var session = session
        (session.disks, session.shares) = try snapshot.session(disks: session.disks, shares: session.shares)
        for (saved, disk) in zip(snapshot.disks, session.disks) {
            var status = stat()
            guard stat(disk.path, &status) == 0 else { throw SnapshotError.diskChanged(path: disk.path, reason: "it cannot be found") }
            guard UInt64(clamping: status.st_size) == saved.size else {
                throw SnapshotError.diskChanged(path: disk.path, reason: "its size is \(status.st_size) bytes, not \(saved.size)")
            }
            guard Int64(status.st_mtim.tv_sec) == saved.modified, Int64(status.st_mtim.tv_nsec) == saved.modifiedNanoseconds else {
                throw SnapshotError.diskChanged(path: disk.path, reason: "it was modified after the snapshot")
            }
        }
        let memory = try MemoryFile(path: memoryPath(for: path), size: snapshot.machine.memorySize)
        return try MicroVM(machine: snapshot.machine, session: session, profile: profile, events: events, restoring: (snapshot, memory, path))
    }

    /// Creates the vCPUs and puts back the VM's, the vCPUs' and the devices' state.
    static func restore(_ snapshot: VMSnapshot, vm: VirtualMachine, devices: [StatefulDevice]) throws -> [VirtualCPU] {
        var cpus: [VirtualCPU] = []
        for id in 0..<UInt32(snapshot.machine.vcpuCount) { cpus.append(try vm.createVirtualCPU(id: id)) }
        try vm.restoreState(snapshot.vm)
        for (cpu, state) in zip(cpus, snapshot.cpus) {
            do throws(KVMError) {
                try cpu.restoreState(state)
            } catch {
                throw SnapshotError.state("vCPU \(cpu.id): \(error.description)")
            }
        }
        try restoreStates(snapshot.devices, into: devices)
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
            let start = MonotonicClock.nanoseconds()
            do throws(SnapshotError) {
                try pause()
                defer { if !wasPaused { resume() } }
                let bytes = try snapshot(to: path)
                return JSONObject([("ok", .bool(true)), ("path", .string(path)), ("memory_path", .string(Self.memoryPath(for: path))),
                                   ("state_bytes", .number(Double(bytes))), ("milliseconds", .number(Double((MonotonicClock.nanoseconds() - start) / 1_000_000)))])
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

    /// Writes the paused VM to `path` and `path.mem` (`SnapshotOutput`), neither of which
    /// may be a file the VM runs from. Returns the state file's size.
    func snapshot(to path: String) throws(SnapshotError) -> Int {
        // Disks bound to a template's slots are not recorded as a snapshot's disks are (by
        // place, size and time): a restore could not check that they are the ones the guest
        // has cached, so such a VM is not snapshotted.
        if disks.count > machine.devices.count(where: { $0.kind == "disk" }) { throw .boundSlots }
        // Frames and connections in flight live in the host's sockets, which a snapshot
        // cannot hold; an idle network or vsock device (a template's) is saved.
        for slot in devices.compactMap({ ($0 as? VirtioMMIOTransport)?.device }) {
            if let net = slot as? VirtioNet, !net.isIdle { throw .networkDevice }
            if let vsock = slot as? VirtioVsock, !vsock.isIdle { throw .networkDevice }
        }
        let memoryPath = Self.memoryPath(for: path)
        try refuseInputs(path)
        try refuseInputs(memoryPath)
        let state: VMSnapshot
        do throws(KVMError) {
            let msrIndices = try hypervisor.savedMSRIndices()
            let cpuStates = try cpus.map { cpu throws(KVMError) in try cpu.saveState(msrIndices: msrIndices) }
            var saved = machine
            saved.kernel = ""
            saved.initrds = []
            state = VMSnapshot(
                machine: saved, disks: VMSnapshot.stamps(disks.prefix(machine.devices.count { $0.kind == "disk" }).map { $0.status() }),
                hostCPU: VMSnapshot.hostFingerprint(try hypervisor.supportedCPUID()), vm: try vm.saveState(), cpus: cpuStates,
                devices: Self.savedStates(devices), exitStatus: reported.value)
        } catch {
            throw .state("saving KVM state: \(error.description)")
        }
        // Both temporaries first: a leftover of either refuses the snapshot before anything is replaced.
        let memoryOutput = try SnapshotOutput(memoryPath)
        let stateOutput = try SnapshotOutput(path)
        try memoryOutput.write { fd throws(SnapshotError) in
            do throws(GuestMemoryError) {
                try memory.save(to: fd)
            } catch {
                if case .saveFailed(let code) = error { throw .file(path: memoryOutput.temporary, action: "write", errno: code) }
                throw .file(path: memoryOutput.temporary, action: "write", errno: EIO)
            }
        }
        let bytes = state.file.encoded()
        try stateOutput.write(bytes)
        try memoryOutput.commit()
        try stateOutput.commit()
        return bytes.count
    }

    /// Refuses `path` when it is the kernel, an initrd or a disk of this VM (the same device
    /// and inode, whatever the name): renaming a snapshot over it would destroy it.
    private func refuseInputs(_ path: String) throws(SnapshotError) {
        guard let target = InputFile.Identity.of(path) else { return }
        if let input = inputs.first(where: { $0.identity == target }) { throw .replacesInput(path: path, input: input.role) }
    }

    /// The state file's bytes: a regular file (opened without blocking, so a FIFO is refused,
    /// not waited on) of a size a snapshot can have.
    private static func readStateFile(_ path: String) throws -> [UInt8] {
        let file = try InputFile(path, kinds: .regular)
        // The state is small (its sections are bounded); a huge file is not a snapshot.
        guard file.status.st_size <= off_t(SnapshotFile.maximumSectionLength * 4) else { throw SnapshotError.notASnapshot }
        var bytes = [UInt8](repeating: 0, count: Int(file.status.st_size))
        var done = 0
        while done < bytes.count {
            let result = bytes.withUnsafeMutableBytes { read(file.fd, $0.baseAddress! + done, $0.count - done) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else { throw result == 0 ? SnapshotError.truncated : SnapshotError.file(path: path, action: "read", errno: errno) }
            done += result
        }
        return bytes
    }
}
