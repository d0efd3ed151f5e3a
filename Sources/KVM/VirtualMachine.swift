import CKVM
import Glibc
import Memory
import SystemPackage
import X86

/// A KVM virtual machine (the VM fd): memory slots, the in-kernel interrupt controller
/// and PIT, interrupt lines, ioeventfd/irqfd, and the factory for vCPUs. Owns its fd.
public final class VirtualMachine: @unchecked Sendable {
    let fd: FileDescriptor
    /// Kept so that the system fd outlives every VM created from it.
    public let hypervisor: Hypervisor
    private var nextSlot: UInt32 = 0

    init(fd: FileDescriptor, hypervisor: Hypervisor) {
        self.fd = fd
        self.hypervisor = hypervisor
    }

    deinit {
        try? fd.close()
    }

    /// Registers every region of `memory` as a memory slot. The memory must outlive the VM's use of it.
    public func map(_ memory: GuestMemory) throws(KVMError) {
        for region in memory.regions {
            var slot = kvm_userspace_memory_region(
                slot: nextSlot,
                flags: 0,
                guest_phys_addr: region.start.rawValue,
                memory_size: UInt64(region.size),
                userspace_addr: UInt64(UInt(bitPattern: region.host))
            )
            try Ioctl.call(fd, CKVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", &slot)
            nextSlot += 1
        }
    }

    /// Places the three pages KVM needs for real-mode emulation on Intel (the TSS).
    public func setTSSAddress(_ address: GuestAddress) throws(KVMError) {
        try Ioctl.call(fd, CKVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", value: UInt(address.rawValue))
    }

    /// Places the one page KVM needs for its identity map on Intel without unrestricted guest.
    public func setIdentityMapAddress(_ address: GuestAddress) throws(KVMError) {
        var value = address.rawValue
        try Ioctl.call(fd, CKVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", &value)
    }

    /// Creates the in-kernel PIC pair, IOAPIC and per-vCPU LAPICs. Call before creating vCPUs.
    public func createInterruptController() throws(KVMError) {
        try Ioctl.call(fd, CKVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", value: 0)
    }

    /// Creates the in-kernel i8254 timer, which Linux calibrates against.
    public func createProgrammableIntervalTimer() throws(KVMError) {
        var config = kvm_pit_config()
        try Ioctl.call(fd, CKVM_CREATE_PIT2, "KVM_CREATE_PIT2", &config)
    }

    /// Drives interrupt line `irq` of the in-kernel irqchip high or low.
    public func setInterruptLine(_ irq: UInt32, active: Bool) throws(KVMError) {
        var level = kvm_irq_level()
        level.irq = irq
        level.level = active ? 1 : 0
        try Ioctl.call(fd, CKVM_IRQ_LINE, "KVM_IRQ_LINE", &level)
    }

    /// Has KVM signal `event` when the guest writes to the MMIO (or, with `pio`, port) address,
    /// without an exit to userspace; with `datamatch`, only writes of that value.
    public func registerIOEventFD(_ event: EventFD, address: UInt64, length: UInt32, datamatch: UInt64? = nil,
                                  pio: Bool = false) throws(KVMError) {
        var request = kvm_ioeventfd()
        request.addr = address
        request.len = length
        request.fd = event.fd.rawValue
        request.datamatch = datamatch ?? 0
        request.flags = (pio ? UInt32(1 << kvm_ioeventfd_flag_nr_pio) : 0)
            | (datamatch != nil ? UInt32(1 << kvm_ioeventfd_flag_nr_datamatch) : 0)
        try Ioctl.call(fd, CKVM_IOEVENTFD, "KVM_IOEVENTFD", &request)
    }

    /// Has KVM raise interrupt `gsi` whenever `event` is signalled.
    public func registerIRQFD(_ event: EventFD, gsi: UInt32) throws(KVMError) {
        var request = kvm_irqfd()
        request.fd = UInt32(bitPattern: event.fd.rawValue)
        request.gsi = gsi
        try Ioctl.call(fd, CKVM_IRQFD, "KVM_IRQFD", &request)
    }

    /// Creates vCPU `id` and maps its shared `kvm_run` area.
    public func createVirtualCPU(id: UInt32) throws(KVMError) -> VirtualCPU {
        let cpufd = FileDescriptor(rawValue: try Ioctl.call(fd, CKVM_CREATE_VCPU, "KVM_CREATE_VCPU", value: UInt(id)))
        let size = hypervisor.vcpuMmapSize
        guard let area = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, cpufd.rawValue, 0),
              area != MAP_FAILED
        else {
            let error = Errno(rawValue: errno)
            try? cpufd.close()
            throw .systemCallFailed(call: "mmap of kvm_run for vCPU \(id)", errno: error)
        }
        return VirtualCPU(id: id, fd: cpufd, runArea: area, runAreaSize: size, vm: self)
    }
}
