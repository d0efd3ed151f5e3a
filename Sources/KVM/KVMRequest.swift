import CKVM

/// ioctl request numbers a running VM's threads issue, for system-call filters that
/// allow those and no others.
public enum KVMRequest {
    /// What a vCPU thread issues after the VM is built: run, raise interrupts, and read
    /// the registers and translate RIP for a fault diagnosis.
    public static let vcpuThread: [UInt] = [CKVM_RUN, CKVM_IRQ_LINE, CKVM_GET_REGS, CKVM_GET_SREGS, CKVM_TRANSLATE]
    /// What the event loop issues: console input raises the device's interrupt.
    public static let eventLoop: [UInt] = [CKVM_IRQ_LINE]
}
