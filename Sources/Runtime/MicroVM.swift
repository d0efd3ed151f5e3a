import ACPI
import Arch
import Boot
import Devices
import Glibc
import KVM
import Memory
import Synchronization

/// A virtual machine built from a `MachineSpec` bound to a `Session`: KVM VM with
/// in-kernel irqchip and PIT, guest RAM, the loaded kernel, the vCPU(s), COM1, the i8042
/// and the machine's virtio devices. `run()` runs it to the end on vCPU threads and the
/// calling thread; `requestStop()` may be called from any thread.
public final class MicroVM: @unchecked Sendable {
    public let machine: MachineSpec
    public let session: Session
    public let profile: HostProfile
    let hypervisor: Hypervisor
    let vm: VirtualMachine
    let memory: GuestMemory
    /// A restored VM's memory file, held open (and leased) while the guest runs on it.
    let memoryFile: MemoryFile?
    let cpus: [VirtualCPU]
    let ioBus = Bus()
    let mmioBus = Bus()
    let serial: Serial16550
    let virtioConsole: VirtioConsole?
    let streams: CommandStreams?
    /// Where a template's /init waits for its work order.
    let workOrder: WorkOrderPort?
    let control: RunControl
    let socket: ConsoleSocketServer?
    let controlServer: ControlServer?
    let deviceIO: DeviceIO
    /// The disks' files, in the machine's order.
    let disks: [DiskFile]
    /// What the machine's devices ask of the vCPU threads.
    let needs: SeccompFilter.Needs
    /// What the VM runs from, by identity, taken while the build could reach every path (a
    /// jail hides them later), each named as messages name it ("the disk PATH"): no output
    /// of the run is written over one of these.
    package let inputs: [(role: String, identity: InputFile.Identity)]
    /// A restored VM's snapshot files: no output is written into them either, but a new
    /// snapshot may replace them (a rename leaves the mapped, leased file to this VM).
    package let restoredFrom: [(role: String, identity: InputFile.Identity)]
    /// Opened with the VM and emptied only when it runs, so that a run that cannot start
    /// leaves the last run's log as it was.
    private var consoleLog: ConsoleLog?
    /// passt, when microvm started it for the network device.
    private let passt: PasstProcess?
    private let events: BootEvents
    private let profiler: GuestProfiler?
    /// The status the guest's /init reported through the exit-status register.
    let reported = ReportedStatus()
    /// Every device a snapshot saves, in a fixed order: COM1, the i8042, then the virtio slots.
    let devices: [StatefulDevice]
    /// Only the event loop's thread reads or changes it.
    var paused = false
    /// The run ends in a snapshot (a template's build), which the event loop's thread takes.
    var snapshotsWhenWaiting = false
    /// A restored template's work order, handed to the guest when the run starts.
    var pendingOrder: WorkOrder?

    /// Builds the VM; nothing runs until `run()`. Throws with a message naming what failed.
    public convenience init(_ configuration: VMConfiguration, profile: HostProfile = .current, events: BootEvents = BootEvents()) throws {
        try self.init(machine: configuration.machine, session: configuration.session, profile: profile, events: events)
    }

    /// Builds `machine` bound to `session`; nothing runs until `run()`.
    public convenience init(machine: MachineSpec, session: Session, profile: HostProfile = .current, events: BootEvents = BootEvents()) throws {
        try self.init(machine: machine, session: session, profile: profile, events: events, restoring: nil)
    }

    /// Builds the VM, from a kernel or, with `restoring`, from a snapshot and its memory file.
    init(machine: MachineSpec, session: Session, profile: HostProfile, events: BootEvents,
         restoring: (snapshot: VMSnapshot, memory: MemoryFile, path: String)?) throws {
        self.machine = machine
        self.session = session
        self.profile = profile
        self.events = events
        if let profiling = session.profiling, !GuestProfiler.rates.contains(profiling.rate) {
            throw ConfigurationError.profileRate(profiling.rate)
        }
        guard VMConfiguration.consoleLogLimits.contains(session.consoleLogLimit) else {
            throw ConfigurationError.consoleLogLimit(session.consoleLogLimit)
        }
        profiler = session.profiling.map { GuestProfiler(rate: $0.rate, symbols: $0.symbols) }
        let control = try RunControl()
        self.control = control
        socket = try session.consoleSocket.map { path throws(UnixSocket.Error) in try ConsoleSocketServer(path: path) }
        controlServer = try session.controlSocket.map { path throws(UnixSocket.Error) in try ControlServer(path: path) }
        if machine.devices.contains(.commandStreams) && machine.console == .virtio { throw ConfigurationError.commandStreamsNeedSerialConsole }
        let output = ConsoleOutput(fd: machine.devices.contains(.commandStreams) ? nil : session.consoleOutput, socket: socket,
                                   abandon: { control.isStopping }, logFailed: { control.stop(.vmmError($0.description)) })
        // Last, when nothing else can fail: a run that cannot start leaves the file as it was.
        func startConsoleLog() throws {
            guard let path = session.consoleLog else { return }
            let file = try OutputFile(path, role: "the console log", others: inputs + restoredFrom)
            let log = ConsoleLog(file, limit: session.consoleLogLimit)
            consoleLog = log
            output.startLog(log)
        }
        guard machine.slotCount <= VirtioSlots.capacity else {
            throw ConfigurationError.tooManyDevices(requested: machine.slotCount, capacity: VirtioSlots.capacity)
        }
        let resources = try SessionResources(session, for: machine)
        disks = resources.disks
        passt = resources.passt
        let images = (machine.kernel.isEmpty ? [] : [("the kernel", machine.kernel)])
            + machine.initrds.enumerated().map { ($0.offset == 0 ? "the initrd" : "an initrd", $0.element) }
            + [session.profiling?.symbolsFile].compactMap { $0 }.map { ("the symbol file", $0) }
        inputs = images.compactMap { role, path in InputFile.Identity.of(path).map { ("\(role) \(path)", $0) } }
            + disks.map { ("the disk \($0.path)", InputFile.Identity($0.status())) }
        let snapshotFiles = restoring.map { [("the snapshot", $0.path), ("the snapshot's memory file", $0.memory.path)] } ?? []
        restoredFrom = snapshotFiles.compactMap { role, path in InputFile.Identity.of(path).map { ("\(role) \(path)", $0) } }
        let deviceIO = try DeviceIO()
        self.deviceIO = deviceIO

        hypervisor = try Hypervisor()
        if let restoring, VMSnapshot.hostFingerprint(try hypervisor.supportedCPUID()) != restoring.snapshot.hostCPU {
            throw SnapshotError.otherHost
        }
        let maximum = hypervisor.maximumVCPUs
        guard (1...maximum).contains(machine.vcpuCount) else {
            throw ConfigurationError.vcpuCount(requested: machine.vcpuCount, maximum: maximum)
        }
        vm = try hypervisor.createVirtualMachine()
        if hypervisor.hasIdentityMapAddress {
            try vm.setIdentityMapAddress(MemoryMap.kvmIdentityMap)
        }
        try vm.setTSSAddress(MemoryMap.kvmTSS)
        try vm.createInterruptController()
        try vm.createProgrammableIntervalTimer()
        events.reached(\.kvm)
        memoryFile = restoring?.memory
        memory = try restoring?.memory.map() ?? GuestMemory(size: machine.memorySize)
        try vm.map(memory)
        events.reached(\.memory)

        let vm = self.vm
        func interruptLine(_ irq: UInt32) -> KVMInterruptLine {
            KVMInterruptLine(vm: vm, irq: irq) { error in control.stop(.vmmError("interrupt \(irq): \(error.description)")) }
        }
        let write: @Sendable (UnsafeRawBufferPointer) -> Void = { bytes in
            events.firstOutput()
            events.observe(bytes)
            output.write(bytes)
        }
        serial = Serial16550(interrupt: interruptLine(Serial16550.com1IRQ), output: write)
        try ioBus.insert(serial, base: Serial16550.com1Port, size: Serial16550.portCount)

        let reported = self.reported
        try mmioBus.insert(ExitStatusRegister { status in reported.set(status) },
                           base: MemoryMap.exitStatusRegister.rawValue, size: ExitStatusRegister.size)
        let i8042 = I8042 {
            // The guest's /init reports its command's status just before it reboots.
            control.stop(reported.value.map(VMExit.commandExited) ?? .reset)
        }
        try ioBus.insert(i8042, base: I8042.basePort, size: I8042.portCount)
        if machine.acpi {
            let power = PowerRegisters(onPowerOff: { control.stop(reported.value.map(VMExit.commandExited) ?? .powerOff) },
                                       onReset: { control.stop(reported.value.map(VMExit.commandExited) ?? .reset) })
            try ioBus.insert(power, base: PowerRegisters.basePort, size: PowerRegisters.portCount)
        }

        let slots = VirtioSlots(bus: mmioBus, memory: memory, interrupt: interruptLine) { Self.report($0) }
        let builder = MachineBuilder(machine: machine, session: session, resources: resources, vm: vm, mmioBus: mmioBus, slots: slots,
                                     deviceIO: deviceIO, control: control, consoleWrite: write)
        try builder.attachDevices()
        streams = builder.streams
        virtioConsole = builder.virtioConsole
        workOrder = builder.workOrder
        needs = builder.needs
        devices = [serial, i8042] + slots.slots.map(\.transport)
        events.reached(\.devices)
        if restoring == nil {
            for bind in builder.bindings { try bind() }
        }

        if let restoring {
            cpus = try Self.restore(restoring.snapshot, vm: vm, devices: devices)
            if machine.acpi { try VMGenerationID.renew(memory: memory, interrupt: interruptLine(MemoryMap.generationIDInterrupt)) }
            if let status = restoring.snapshot.exitStatus { reported.set(status) }
            for bind in builder.bindings { try bind() }
            try startConsoleLog()
            events.built()
            return
        }

        var commandLine = machine.commandLine
        let acpi = machine.acpi ? ACPITables(Self.platform(machine, slots: slots)) : nil
        commandLine.insertKernelParameters(profile.kernelParameters + (acpi == nil ? slots.kernelParameters : [])
            + (session.controlSocket != nil || workOrder != nil ? profile.snapshotKernelParameters : []))
        let entry = try KernelLoader.load(kernel: machine.kernel, initrds: machine.initrds,
                                          commandLine: commandLine, rsdp: acpi.map { GuestAddress($0.rsdpAddress) }, into: memory)
        try BootCPUState.writeTables(for: entry, into: memory)
        // Kept beside ACPI: a kernel built without ACPI still finds its CPUs here.
        try memory.write(MPTable.bytes(cpus: machine.vcpuCount), at: MemoryMap.mpTable)
        if let acpi {
            try memory.write(acpi.image, at: MemoryMap.acpiTables)
            try VMGenerationID.write(into: memory)
        }
        events.reached(\.kernel)
        let supported = try hypervisor.supportedCPUID()
        var cpus: [VirtualCPU] = []
        for id in 0..<UInt32(machine.vcpuCount) {
            let cpu = try vm.createVirtualCPU(id: id)
            try cpu.setCPUID(CPUIDTemplate.entries(supported: supported, vcpu: id, cpus: machine.vcpuCount, profile: profile))
            try cpu.setMSRs(BootCPUState.msrs)
            try cpu.setLocalAPIC(BootCPUState.localAPIC(try cpu.localAPIC()))
            // Only the boot CPU starts here; the others wait in KVM for the guest's INIT and SIPI.
            if id == 0 {
                try cpu.setRegisters(BootCPUState.registers(for: entry))
                try cpu.setSpecialRegisters(BootCPUState.specialRegisters(try cpu.specialRegisters(), for: entry))
                try cpu.setFloatingPointState(BootCPUState.floatingPointState())
            }
            cpus.append(cpu)
        }
        self.cpus = cpus
        events.reached(\.vcpus)
        try startConsoleLog()
        events.built()
    }

    /// What the ACPI tables describe: the devices just put on the buses.
    static func platform(_ machine: MachineSpec, slots: VirtioSlots) -> ACPIPlatform {
        let power = ACPIPlatform.PowerRegisters(
            sleepControl: UInt16(PowerRegisters.basePort + PowerRegisters.sleepControlOffset),
            sleepStatus: UInt16(PowerRegisters.basePort + PowerRegisters.sleepStatusOffset),
            reset: UInt16(PowerRegisters.basePort + PowerRegisters.resetOffset),
            resetValue: PowerRegisters.resetValue, softOffSleepType: PowerRegisters.softOffSleepType)
        return ACPIPlatform(cpus: machine.vcpuCount, localAPICAddress: UInt32(MemoryMap.lapic.rawValue),
                            ioAPICAddress: UInt32(MemoryMap.ioapic.rawValue),
                            serial: .init(port: UInt16(Serial16550.com1Port), irq: UInt8(Serial16550.com1IRQ)),
                            virtioDevices: slots.acpiDevices, power: power, generationID: VMGenerationID.acpiDevice)
    }

    /// Runs the guest until it resets, crashes, the user quits or a signal arrives.
    /// Console input comes from the console socket, or from standard input when the
    /// configuration asks for it; on a terminal, raw mode is set for the run and
    /// always restored.
    public func run() -> VMExit {
        do {
            try consoleLog?.begin()
            try sendPendingOrder()
        } catch {
            return .vmmError("\(error)")
        }
        var previousMask = sigset_t()
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in EventLoop.handledSignals(forwarding: streams != nil) + [KickSignal.number] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previousMask)
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }
        KickSignal.acquire()
        defer { KickSignal.release() }

        let terminal = socket == nil && session.consoleInput ? Terminal(fd: STDIN_FILENO) : nil
        let input: EventLoop.Input
        if let socket {
            input = .socket(socket)
        } else if session.consoleInput {
            // The command's own streams carry every byte: a container has no escape key.
            input = .standardInput(escape: terminal != nil && streams == nil)
        } else {
            input = .none
        }
        // Typed input goes to the command's streams, or to the console the kernel uses.
        let deliver: ([UInt8]) -> Int
        let resize: ((UInt16, UInt16) -> Void)?
        if let console = streams?.io ?? virtioConsole {
            deliver = { console.receive($0) }
            resize = { console.setSize(columns: $0, rows: $1) }
        } else {
            deliver = { [serial] in serial.receive($0) }
            resize = nil
        }
        let loop: EventLoop
        do {
            loop = try EventLoop(control: control, input: input, deliver: deliver, resize: resize, devices: deviceIO,
                                 controlServer: controlServer, answer: { [unowned self] in answer($0) }, streams: streams)
        } catch {
            return .vmmError(error.description)
        }

        terminal?.makeRaw()
        defer { terminal?.restore() }

        var threads: [NativeThread] = []
        for cpu in cpus {
            let control = self.control
            // Registered before the thread exists, so that a stop from here on reaches it.
            let slot = control.register { cpu.requestImmediateExit() }
            let runner = VCPURunner(cpu: cpu, memory: memory, ioBus: ioBus, mmioBus: mmioBus, control: control,
                                    profile: profile, prepare: prepareThread(for: cpu), finish: { [events] in events.add($0) },
                                    sampler: profiler?.sampler())
            do throws(KVMError) {
                let thread = try NativeThread(name: "microvm-vcpu\(cpu.id)") {
                    runner.run()
                    control.finished(slot)
                }
                control.attach(thread: thread.handle, to: slot)
                threads.append(thread)
            } catch {
                control.finished(slot)
                control.stop(.vmmError(error.description))
                break
            }
        }
        if session.seccomp {
            do {
                try SeccompFilter.install(for: .eventLoop, control: controlServer != nil || snapshotsWhenWaiting, networking: needs.contains(.networking),
                                          vsock: needs.contains(.vsock))
            } catch {
                control.stop(.vmmError(error.description))
            }
        }
        loop.run()
        // A vCPU blocked in a console write when the first kick came is kicked again until it ends.
        for thread in threads { thread.join(every: 50) { control.kickAgain() } }
        passt?.stop()
        events.exited()
        return control.exit ?? .vmmError("the VM stopped without a reason")
    }

    /// What a vCPU thread does before it first enters the guest: take kicks, install its
    /// system-call filter, and time the boot CPU's first run.
    private func prepareThread(for cpu: VirtualCPU) -> () throws -> Void {
        let events = self.events
        let seccomp = session.seccomp
        let sharing = needs.contains(.sharing)
        let networking = needs.contains(.networking)
        let vsock = needs.contains(.vsock)
        let consoleLog = session.consoleLog != nil
        return {
            if cpu.id == 0 { events.reached(\.thread) }
            var kick = sigset_t()
            sigemptyset(&kick)
            sigaddset(&kick, KickSignal.number)
            pthread_sigmask(SIG_UNBLOCK, &kick, nil)
            if seccomp { try SeccompFilter.install(for: .vcpu, sharing: sharing, networking: networking, vsock: vsock, consoleLog: consoleLog) }
            if cpu.id == 0 { events.firstRun() }
        }
    }

    /// Where the vCPUs' time went, when the configuration asked for profiling; whole once `run()` has returned.
    public var guestProfile: GuestProfile? { profiler?.profile }

    /// Asks a running VM to stop, from any thread; `run()` then returns `.stopRequested`.
    public func requestStop() {
        control.stop(.stopRequested)
    }

    /// A line from the VMM itself, on standard error.
    static func report(_ message: String) {
        let line = "microvm: \(message)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    }
}

/// The status the guest's /init reported through the exit-status register, which the
/// i8042's reset turns into the VM's exit.
final class ReportedStatus: Sendable {
    private let status = Mutex<Int32?>(nil)

    var value: Int32? { status.withLock { $0 } }

    func set(_ value: Int32) {
        status.withLock { $0 = value }
    }
}
