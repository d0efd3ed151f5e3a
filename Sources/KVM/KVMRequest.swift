import CKVM

/// ioctl request numbers a running VM's threads issue, for system-call filters that
/// allow those and no others.
public enum KVMRequest {
    /// What a vCPU thread issues after the VM is built: run, raise interrupts, and read
    /// the registers and translate RIP for a fault diagnosis.
    public static let vcpuThread: [UInt] = [CKVM_RUN, CKVM_IRQ_LINE, CKVM_GET_REGS, CKVM_GET_SREGS, CKVM_TRANSLATE]
    /// What the event loop issues: console input raises the device's interrupt.
    public static let eventLoop: [UInt] = [CKVM_IRQ_LINE]
    /// What the event loop adds with a control socket: saving the VM's and vCPUs' state,
    /// and telling a paused guest's kvmclock.
    public static let snapshot: [UInt] = [
        CKVM_GET_REGS, CKVM_GET_SREGS, CKVM_GET_XSAVE, CKVM_GET_XCRS, CKVM_GET_DEBUGREGS, CKVM_GET_LAPIC,
        CKVM_GET_VCPU_EVENTS, CKVM_GET_MP_STATE, CKVM_GET_CPUID2, CKVM_GET_MSRS, CKVM_GET_IRQCHIP, CKVM_GET_PIT2,
        CKVM_GET_CLOCK, CKVM_KVMCLOCK_CTRL, CKVM_GET_MSR_INDEX_LIST, CKVM_GET_SUPPORTED_CPUID,
    ]
}
