import CKVM
import Glibc

/// A virtual machine built from a `VMConfiguration`: KVM VM with in-kernel irqchip
/// and PIT, guest RAM, the loaded kernel, the vCPU(s), COM1 and the i8042.
/// `run()` runs it to the end on vCPU threads and the calling thread.
public final class MicroVM {
    public let configuration: VMConfiguration
    public let profile: HostProfile
    let hypervisor: Hypervisor
    let vm: VirtualMachine
    let memory: GuestMemory
    let cpus: [VirtualCPU]
    let ioBus = Bus()
    let mmioBus = Bus()
    let serial: Serial16550
    let control: RunControl
    private let events: BootEvents

    /// Builds the VM; nothing runs until `run()`. Throws with a message naming what failed.
    public init(_ configuration: VMConfiguration, output: ConsoleOutput, profile: HostProfile = .current,
                events: BootEvents = BootEvents()) throws {
        self.configuration = configuration
        self.profile = profile
        self.events = events
        hypervisor = try Hypervisor()
        vm = try hypervisor.createVirtualMachine()
        if hypervisor.checkExtension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 {
            try vm.setIdentityMapAddress(MemoryMap.kvmIdentityMap)
        }
        try vm.setTSSAddress(MemoryMap.kvmTSS)
        try vm.createInterruptController()
        try vm.createProgrammableIntervalTimer()

        memory = try GuestMemory(size: configuration.memorySize)
        try vm.map(memory)
        var commandLine = configuration.commandLine
        commandLine.insertKernelParameters(profile.kernelParameters)
        let entry = try KernelLoader.load(kernel: configuration.kernel, initrd: configuration.initrd,
                                          commandLine: commandLine, into: memory)
        try BootCPUState.writeTables(for: entry, into: memory)

        let control = try RunControl()
        self.control = control
        let supported = try hypervisor.supportedCPUID()
        var cpus: [VirtualCPU] = []
        for id in 0..<UInt32(configuration.vcpuCount) {
            let cpu = try vm.createVirtualCPU(id: id)
            try cpu.setCPUID(CPUIDTemplate.entries(supported: supported, vcpu: id))
            try cpu.setMSRs(BootCPUState.msrs)
            try cpu.setRegisters(BootCPUState.registers(for: entry))
            try cpu.setSpecialRegisters(BootCPUState.specialRegisters(try cpu.specialRegisters(), for: entry))
            try cpu.setFloatingPointState(BootCPUState.floatingPointState())
            try cpu.setLocalAPIC(BootCPUState.localAPIC(try cpu.localAPIC()))
            cpus.append(cpu)
        }
        self.cpus = cpus

        let line = KVMInterruptLine(vm: vm, irq: Serial16550.com1IRQ) { error in
            control.stop(.vmmError("serial interrupt: \(error.description)"))
        }
        serial = Serial16550(interrupt: line) { bytes in
            events.firstOutput()
            output.write(bytes)
        }
        try ioBus.insert(serial, base: Serial16550.com1Port, size: Serial16550.portCount)
        try ioBus.insert(I8042 { control.stop(.reset) }, base: I8042.basePort, size: I8042.portCount)
        events.built()
    }

    /// Runs the guest until it resets, crashes, the user quits or a signal arrives.
    /// Console input comes from standard input when the configuration asks for it;
    /// on a terminal, raw mode is set for the run and always restored.
    public func run() -> VMExit {
        var previousMask = sigset_t()
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in EventLoop.stopSignals + [RunControl.kickSignal] { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previousMask)
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }
        installKickHandler()

        let terminal = configuration.consoleInput ? Terminal(fd: STDIN_FILENO) : nil
        let loop: EventLoop
        do {
            loop = try EventLoop(control: control, input: configuration.consoleInput ? STDIN_FILENO : nil,
                                 handleEscape: terminal != nil) { [serial] bytes in serial.receive(bytes) }
        } catch {
            return .vmmError(error.description)
        }

        terminal?.makeRaw()
        defer { terminal?.restore() }

        var threads: [NativeThread] = []
        for cpu in cpus {
            let events = self.events
            let firstRun: (@Sendable () -> Void)? = cpu.id == 0 ? { @Sendable in events.firstRun() } : nil
            let runner = VCPURunner(cpu: cpu, memory: memory, ioBus: ioBus, mmioBus: mmioBus, control: control,
                                    profile: profile, onFirstRun: firstRun)
            do throws(KVMError) {
                let thread = try NativeThread { runner.run() }
                control.onStop {
                    cpu.requestImmediateExit()
                    thread.send(RunControl.kickSignal)
                }
                threads.append(thread)
            } catch {
                control.stop(.vmmError(error.description))
                break
            }
        }
        loop.run()
        for thread in threads { thread.join() }
        events.exited()
        return control.exit ?? .vmmError("the VM stopped without a reason")
    }

    private func installKickHandler() {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(RunControl.kickSignal, &action, nil)
    }
}
