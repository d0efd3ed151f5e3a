import CKVM
import Glibc
import Memory
import SystemPackage
import X86

/// One virtual CPU: its fd, the mmapped `kvm_run` area, register state, and `run()`.
/// Owns its fd and mapping. Meant to be driven by a single thread; only
/// `requestImmediateExit()` may be called from another one.
public final class VirtualCPU: @unchecked Sendable {
    public let id: UInt32
    let fd: FileDescriptor
    private let runArea: UnsafeMutableRawPointer
    private let runAreaSize: Int
    private var state: UnsafeMutablePointer<kvm_run> { runArea.assumingMemoryBound(to: kvm_run.self) }
    /// Kept so that the VM fd outlives its vCPUs.
    public let vm: VirtualMachine

    init(id: UInt32, fd: FileDescriptor, runArea: UnsafeMutableRawPointer, runAreaSize: Int, vm: VirtualMachine) {
        self.id = id
        self.fd = fd
        self.runArea = runArea
        self.runAreaSize = runAreaSize
        self.vm = vm
    }

    deinit {
        munmap(runArea, runAreaSize)
        try? fd.close()
    }

    // MARK: Registers

    public func registers() throws(KVMError) -> Registers {
        var value = kvm_regs()
        try Ioctl.call(fd, CKVM_GET_REGS, "KVM_GET_REGS", &value)
        return Registers(value)
    }

    public func setRegisters(_ registers: Registers) throws(KVMError) {
        var value = registers.kvm
        try Ioctl.call(fd, CKVM_SET_REGS, "KVM_SET_REGS", &value)
    }

    public func specialRegisters() throws(KVMError) -> SpecialRegisters {
        var value = kvm_sregs()
        try Ioctl.call(fd, CKVM_GET_SREGS, "KVM_GET_SREGS", &value)
        return SpecialRegisters(value)
    }

    public func setSpecialRegisters(_ registers: SpecialRegisters) throws(KVMError) {
        var value = registers.kvm
        try Ioctl.call(fd, CKVM_SET_SREGS, "KVM_SET_SREGS", &value)
    }

    public func floatingPointState() throws(KVMError) -> FPUState {
        var value = kvm_fpu()
        try Ioctl.call(fd, CKVM_GET_FPU, "KVM_GET_FPU", &value)
        return FPUState(value)
    }

    public func setFloatingPointState(_ state: FPUState) throws(KVMError) {
        var value = state.kvm
        try Ioctl.call(fd, CKVM_SET_FPU, "KVM_SET_FPU", &value)
    }

    /// Writes model-specific registers; fails naming the first one KVM refused.
    public func setMSRs(_ msrs: [ModelSpecificRegister]) throws(KVMError) {
        let list = KVMList(msrs.map { kvm_msr_entry(index: $0.index, reserved: 0, data: $0.value) })
        let written = try Ioctl.call(fd, CKVM_SET_MSRS, "KVM_SET_MSRS", list.raw)
        if Int(written) < msrs.count {
            let index = String(msrs[Int(written)].index, radix: 16)
            throw .ioctlFailed(request: "KVM_SET_MSRS (MSR 0x\(index))", errno: .invalidArgument)
        }
    }

    /// Reads model-specific registers; an MSR KVM does not know ends the list early.
    public func msrs(_ indices: [UInt32]) throws(KVMError) -> [UInt32: UInt64] {
        let list = KVMList(indices.map { kvm_msr_entry(index: $0, reserved: 0, data: 0) })
        let read = Int(try Ioctl.call(fd, CKVM_GET_MSRS, "KVM_GET_MSRS", list.raw))
        var result: [UInt32: UInt64] = [:]
        for entry in list.entries.prefix(read) { result[entry.index] = entry.data }
        return result
    }

    public func setCPUID(_ entries: [CPUIDEntry]) throws(KVMError) {
        let list = KVMList(entries.map(\.kvm))
        try Ioctl.call(fd, CKVM_SET_CPUID2, "KVM_SET_CPUID2", list.raw)
    }

    public func localAPIC() throws(KVMError) -> LocalAPICState {
        var value = kvm_lapic_state()
        try Ioctl.call(fd, CKVM_GET_LAPIC, "KVM_GET_LAPIC", &value)
        return LocalAPICState(value)
    }

    public func setLocalAPIC(_ state: LocalAPICState) throws(KVMError) {
        var value = state.kvm
        try Ioctl.call(fd, CKVM_SET_LAPIC, "KVM_SET_LAPIC", &value)
    }

    /// Translates a guest virtual address through the guest's current page tables.
    public func translate(_ linearAddress: UInt64) throws(KVMError) -> GuestAddress? {
        var value = kvm_translation()
        value.linear_address = linearAddress
        try Ioctl.call(fd, CKVM_TRANSLATE, "KVM_TRANSLATE", &value)
        return value.valid != 0 ? GuestAddress(value.physical_address) : nil
    }

    // MARK: Running

    /// Makes the current or next `run()` return `.interrupted` at once. Safe from any thread;
    /// pair it with a signal to the vCPU thread to break a `KVM_RUN` already in progress.
    public func requestImmediateExit() {
        // A single byte in memory shared with the kernel: the store cannot tear, and
        // KVM_RUN reads it on entry.
        state.pointee.immediate_exit = 1
    }

    /// Enters the guest until the next exit KVM hands to userspace, and hands the exit
    /// to `handle`. The exit's buffers point into the shared `kvm_run` area, which the
    /// next `KVM_RUN` overwrites: they are valid only inside `handle`.
    public func run<Result>(_ handle: (VCPUExit) -> Result) throws(KVMError) -> Result {
        let result = ckvm_ioctl_value(fd.rawValue, CKVM_RUN, 0)
        if result < 0 {
            if result == -EINTR || result == -EAGAIN {
                // Consumed: the next run enters the guest again unless someone asks anew.
                state.pointee.immediate_exit = 0
                return handle(.interrupted)
            }
            throw .ioctlFailed(request: "KVM_RUN", errno: Errno(rawValue: -result))
        }
        return handle(decodeExit())
    }

    private func decodeExit() -> VCPUExit {
        let run = state
        let reason = run.pointee.exit_reason
        switch Int32(bitPattern: reason) {
        case KVM_EXIT_IO:
            let io = run.pointee.io
            let size = Int(io.size)
            let count = Int(io.count)
            let data = runArea + Int(io.data_offset)
            let length = min(size * count, runAreaSize - Int(io.data_offset))
            if io.direction == UInt8(KVM_EXIT_IO_OUT) {
                return .portOut(port: io.port, size: size, count: count, data: UnsafeRawBufferPointer(start: data, count: length))
            }
            return .portIn(port: io.port, size: size, count: count, data: UnsafeMutableRawBufferPointer(start: data, count: length))
        case KVM_EXIT_MMIO:
            let address = run.pointee.mmio.phys_addr
            let length = min(Int(run.pointee.mmio.len), 8)
            let data = UnsafeMutableRawBufferPointer(start: runArea + Int(CKVM_RUN_MMIO_DATA_OFFSET), count: length)
            if run.pointee.mmio.is_write != 0 {
                return .mmioWrite(address: address, data: UnsafeRawBufferPointer(data))
            }
            return .mmioRead(address: address, data: data)
        case KVM_EXIT_HLT:
            return .halt
        case KVM_EXIT_SHUTDOWN:
            return .shutdown
        case KVM_EXIT_SYSTEM_EVENT:
            return .systemEvent(type: run.pointee.system_event.type)
        case KVM_EXIT_FAIL_ENTRY:
            let failure = run.pointee.fail_entry
            return .failEntry(hardwareReason: failure.hardware_entry_failure_reason, cpu: failure.cpu)
        case KVM_EXIT_INTERNAL_ERROR:
            let failure = run.pointee.`internal`
            let count = min(Int(failure.ndata), 16)
            let data = withUnsafeBytes(of: failure.data) { Array($0.bindMemory(to: UInt64.self).prefix(count)) }
            return .internalError(suberror: failure.suberror, data: data)
        case KVM_EXIT_INTR:
            return .interrupted
        default:
            return .unknown(reason: reason)
        }
    }
}
