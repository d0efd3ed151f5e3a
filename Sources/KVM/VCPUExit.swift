import CKVM

/// Why `KVM_RUN` returned. Buffers point into the vCPU's shared `kvm_run` area and are
/// valid only inside the closure `VirtualCPU.run` hands the exit to; for reads, what the
/// handler stores there is what the guest gets.
public enum VCPUExit {
    /// The guest read `count` items of `size` bytes from `port`; fill `data`.
    case portIn(port: UInt16, size: Int, count: Int, data: UnsafeMutableRawBufferPointer)
    /// The guest wrote `count` items of `size` bytes to `port`.
    case portOut(port: UInt16, size: Int, count: Int, data: UnsafeRawBufferPointer)
    /// The guest read `data.count` bytes at an unbacked physical address; fill `data`.
    case mmioRead(address: UInt64, data: UnsafeMutableRawBufferPointer)
    /// The guest wrote `data` at an unbacked physical address.
    case mmioWrite(address: UInt64, data: UnsafeRawBufferPointer)
    /// HLT with no in-kernel irqchip to wait for an interrupt.
    case halt
    /// Triple fault or other shutdown condition.
    case shutdown
    /// A guest-initiated event such as a PSCI/ACPI reset or power-off (`KVM_SYSTEM_EVENT_*`).
    case systemEvent(type: UInt32)
    /// The hardware refused to enter the guest.
    case failEntry(hardwareReason: UInt64, cpu: UInt32)
    /// KVM could not handle an exit itself, e.g. an instruction its emulator does not implement.
    case internalError(suberror: UInt32, data: [UInt64])
    /// `KVM_RUN` was interrupted by a signal or by `immediate_exit`.
    case interrupted
    /// An exit reason this VMM does not know.
    case unknown(reason: UInt32)
}

extension VCPUExit {
    /// `KVM_SYSTEM_EVENT_CRASH`: the guest reported a crash (shutdown and reset end it normally).
    public static let systemEventCrash = UInt32(KVM_SYSTEM_EVENT_CRASH)

    /// Names KVM's internal-error suberrors (`KVM_INTERNAL_ERROR_*`).
    public static func describeSuberror(_ suberror: UInt32) -> String {
        switch Int32(bitPattern: suberror) {
        case KVM_INTERNAL_ERROR_EMULATION: return "emulation failure"
        case KVM_INTERNAL_ERROR_SIMUL_EX: return "simultaneous exception"
        case KVM_INTERNAL_ERROR_DELIVERY_EV: return "delivery event failure"
        case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: return "unexpected exit reason"
        default: return "suberror \(suberror)"
        }
    }
}
