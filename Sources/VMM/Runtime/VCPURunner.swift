import Glibc

/// The loop a vCPU thread runs: enter the guest, dispatch its port and MMIO
/// accesses to the buses, and turn every way of stopping into a `VMExit`.
final class VCPURunner: @unchecked Sendable {
    let cpu: VirtualCPU
    let memory: GuestMemory
    let ioBus: Bus
    let mmioBus: Bus
    let control: RunControl
    let profile: HostProfile
    /// Called once, when the first KVM_RUN is about to happen (for boot timing).
    let onFirstRun: (@Sendable () -> Void)?
    let seccomp: Bool

    init(cpu: VirtualCPU, memory: GuestMemory, ioBus: Bus, mmioBus: Bus, control: RunControl, profile: HostProfile,
         seccomp: Bool, onFirstRun: (@Sendable () -> Void)? = nil) {
        self.cpu = cpu
        self.memory = memory
        self.ioBus = ioBus
        self.mmioBus = mmioBus
        self.control = control
        self.profile = profile
        self.onFirstRun = onFirstRun
        self.seccomp = seccomp
    }

    func run() {
        var kick = sigset_t()
        sigemptyset(&kick)
        sigaddset(&kick, RunControl.kickSignal)
        pthread_sigmask(SIG_UNBLOCK, &kick, nil)
        if seccomp {
            do {
                try SeccompFilter.install(for: .vcpu)
            } catch {
                control.stop(.vmmError("vCPU \(cpu.id): \(error.description)"))
                return
            }
        }
        onFirstRun?()
        while !control.isStopping {
            let exit: VCPUExit
            do {
                exit = try cpu.run()
            } catch {
                control.stop(.vmmError("vCPU \(cpu.id): \(error.description)"))
                return
            }
            handle(exit)
        }
    }

    private func handle(_ exit: VCPUExit) {
        switch exit {
        case .portIn(let port, let size, let count, let data):
            for index in 0..<count where (index + 1) * size <= data.count {
                ioBus.read(UInt64(port), into: UnsafeMutableRawBufferPointer(rebasing: data[(index * size)..<((index + 1) * size)]))
            }
        case .portOut(let port, let size, let count, let data):
            for index in 0..<count where (index + 1) * size <= data.count {
                ioBus.write(UInt64(port), data: UnsafeRawBufferPointer(rebasing: data[(index * size)..<((index + 1) * size)]))
            }
        case .mmioRead(let address, let data):
            mmioBus.read(address, into: data)
        case .mmioWrite(let address, let data):
            mmioBus.write(address, data: data)
        case .halt, .interrupted:
            break
        case .shutdown:
            control.stop(.tripleFault(rip: (try? cpu.registers().rip) ?? 0))
        case .systemEvent(let type):
            // KVM_SYSTEM_EVENT_CRASH is 3; shutdown (1) and reset (2) end the guest normally.
            if type == 3 {
                control.stop(.internalError("guest stopped: the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)"))
            } else {
                control.stop(.reset)
            }
        case .failEntry(let reason, _):
            control.stop(.internalError("guest stopped: KVM could not enter the guest (hardware entry failure reason 0x\(String(reason, radix: 16)))"))
        case .internalError(let suberror, _):
            control.stop(.internalError(GuestFaultDiagnosis.describe(suberror: suberror, cpu: cpu, memory: memory, profile: profile)))
        case .unknown(let reason):
            control.stop(.vmmError("vCPU \(cpu.id): unhandled KVM exit reason \(reason)"))
        }
    }
}
