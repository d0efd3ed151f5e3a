import Arch
import Devices
import Glibc
import KVM
import Memory

/// The loop a vCPU thread runs: enter the guest, dispatch its port and MMIO
/// accesses to the buses, and turn every way of stopping into a `VMExit`.
package final class VCPURunner<CPU: GuestCPU>: @unchecked Sendable {
    let cpu: CPU
    let memory: GuestMemory
    let ioBus: Bus
    let mmioBus: Bus
    let control: StopSwitch
    let profile: HostProfile
    /// Runs on the vCPU thread before the first KVM_RUN (signal mask, seccomp, boot timing);
    /// a throw stops the VM with the error.
    let prepare: () throws -> Void
    /// Gets this vCPU's exit counts when its loop ends.
    let finish: (ExitCounts) -> Void
    /// Samples the guest's instruction pointer when the VM is profiled.
    let sampler: VCPUSampler?
    /// Only the vCPU's thread touches it.
    private var exits = ExitCounts()

    package init(cpu: CPU, memory: GuestMemory, ioBus: Bus, mmioBus: Bus, control: StopSwitch, profile: HostProfile,
                 prepare: @escaping () throws -> Void = {}, finish: @escaping (ExitCounts) -> Void = { _ in },
                 sampler: VCPUSampler? = nil) {
        self.cpu = cpu
        self.memory = memory
        self.ioBus = ioBus
        self.mmioBus = mmioBus
        self.control = control
        self.profile = profile
        self.prepare = prepare
        self.finish = finish
        self.sampler = sampler
    }

    package func run() {
        defer {
            sampler?.stop()
            finish(exits)
        }
        do {
            // Before the system-call filter, which has no timer_create.
            try sampler?.start()
            try prepare()
        } catch {
            control.stop(.vmmError("vCPU \(cpu.id): \(error)"))
            return
        }
        while !control.isStopping {
            do {
                if control.isPausing {
                    try settle()
                    control.park()
                    continue
                }
                try cpu.run { exit in handle(exit) }
            } catch {
                // A restored guest touching its memory after the memory file shrank: KVM
                // cannot fault the page in and says EFAULT.
                if case .ioctlFailed("KVM_RUN", let code) = error, code.rawValue == EFAULT,
                   let message = MemoryFileGuard.shrunkMessage(for: memory) {
                    control.stop(.vmmError(message))
                } else {
                    control.stop(.vmmError("vCPU \(cpu.id): \(error.description)"))
                }
                return
            }
        }
    }

    /// Enters KVM with immediate exit until it says so: KVM first finishes a port or MMIO
    /// access whose data we just gave it, so that the state read while parked is whole.
    private func settle() throws(KVMError) {
        var settled = false
        while !settled {
            cpu.requestImmediateExit()
            try cpu.run { exit in
                if case .interrupted = exit { settled = true } else { handle(exit) }
            }
        }
    }

    private func handle(_ exit: VCPUExit) {
        exits.count(exit)
        sampler?.exitTaken(cpu)
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
            if type == VCPUExit.systemEventCrash {
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
