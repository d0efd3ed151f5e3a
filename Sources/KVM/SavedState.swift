import CKVM
import Glibc
import SystemPackage
import X86

/// A vCPU's whole architectural state as KVM hands it out, each part kept in its
/// `<linux/kvm.h>` layout: that layout is KVM's stable ABI, so a snapshot stores it as is.
public struct VCPUSavedState: Equatable, Sendable {
    public var registers: [UInt8]
    public var specialRegisters: [UInt8]
    public var extendedState: [UInt8]
    public var extendedControlRegisters: [UInt8]
    public var debugRegisters: [UInt8]
    public var localAPIC: [UInt8]
    public var events: [UInt8]
    public var multiprocessingState: [UInt8]
    /// `kvm_cpuid_entry2` records, one after another.
    public var cpuid: [UInt8]
    public var msrs: [ModelSpecificRegister]

    public init(registers: [UInt8], specialRegisters: [UInt8], extendedState: [UInt8], extendedControlRegisters: [UInt8],
                debugRegisters: [UInt8], localAPIC: [UInt8], events: [UInt8], multiprocessingState: [UInt8],
                cpuid: [UInt8], msrs: [ModelSpecificRegister]) {
        self.registers = registers
        self.specialRegisters = specialRegisters
        self.extendedState = extendedState
        self.extendedControlRegisters = extendedControlRegisters
        self.debugRegisters = debugRegisters
        self.localAPIC = localAPIC
        self.events = events
        self.multiprocessingState = multiprocessingState
        self.cpuid = cpuid
        self.msrs = msrs
    }
}

/// The VM-wide in-kernel devices: both PICs, the IOAPIC, the PIT and the kvmclock.
public struct VMSavedState: Equatable, Sendable {
    /// `kvm_irqchip` for chips 0 (master PIC), 1 (slave PIC) and 2 (IOAPIC).
    public var interruptControllers: [[UInt8]]
    public var timer: [UInt8]
    public var clock: [UInt8]

    public init(interruptControllers: [[UInt8]], timer: [UInt8], clock: [UInt8]) {
        self.interruptControllers = interruptControllers
        self.timer = timer
        self.clock = clock
    }
}

/// Copies between a kernel struct and its bytes; a byte count other than the struct's
/// size is refused, so a damaged snapshot cannot hand KVM a short buffer.
enum RawState {
    static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    static func value<T>(_ type: T.Type, from bytes: [UInt8], _ what: String) throws(KVMError) -> T {
        guard bytes.count == MemoryLayout<T>.size else { throw .badSavedState(what: what, size: bytes.count, expected: MemoryLayout<T>.size) }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    /// The bytes of a `T` a GET ioctl fills in.
    static func get<T>(_ type: T.Type, _ fd: FileDescriptor, _ request: UInt, _ name: String) throws(KVMError) -> [UInt8] {
        let size = MemoryLayout<T>.size
        let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<T>.alignment)
        defer { raw.deallocate() }
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        try Ioctl.call(fd, request, name, raw)
        return Array(UnsafeRawBufferPointer(start: raw, count: size))
    }

    /// Hands saved bytes to a SET ioctl that takes a `T`, once they have a `T`'s size.
    static func set<T>(_ type: T.Type, _ bytes: [UInt8], _ what: String, _ fd: FileDescriptor, _ request: UInt, _ name: String) throws(KVMError) {
        var value = try Self.value(T.self, from: bytes, what)
        try Ioctl.call(fd, request, name, &value)
    }
}

extension Hypervisor {
    /// Every MSR KVM can save and restore for a guest on this host.
    public func savedMSRIndices() throws(KVMError) -> [UInt32] {
        var capacity = 256
        while true {
            // kvm_msr_list: a 32-bit count, then the indices; no padding.
            let raw = UnsafeMutableRawPointer.allocate(byteCount: 4 + 4 * capacity, alignment: 4)
            defer { raw.deallocate() }
            raw.storeBytes(of: UInt32(capacity), as: UInt32.self)
            let result = ckvm_ioctl_ptr(fd.rawValue, CKVM_GET_MSR_INDEX_LIST, raw)
            if result == -E2BIG && capacity < 16384 {
                capacity *= 4
                continue
            }
            if result < 0 { throw .ioctlFailed(request: "KVM_GET_MSR_INDEX_LIST", errno: Errno(rawValue: -result)) }
            let count = min(Int(raw.load(as: UInt32.self)), capacity)
            return (0..<count).map { raw.load(fromByteOffset: 4 + 4 * $0, as: UInt32.self) }
        }
    }
}

extension VirtualCPU {
    /// Reads the vCPU's state. Call it only while no thread is in `run()`, after a run
    /// with immediate exit has completed any port or MMIO access in flight.
    public func saveState(msrIndices: [UInt32]) throws(KVMError) -> VCPUSavedState {
        let cpuid = KVMList<kvm_cpuid_entry2>(capacity: 512)
        try Ioctl.call(fd, CKVM_GET_CPUID2, "KVM_GET_CPUID2", cpuid.raw)
        return VCPUSavedState(
            registers: try RawState.get(kvm_regs.self, fd, CKVM_GET_REGS, "KVM_GET_REGS"),
            specialRegisters: try RawState.get(kvm_sregs.self, fd, CKVM_GET_SREGS, "KVM_GET_SREGS"),
            extendedState: try RawState.get(kvm_xsave.self, fd, CKVM_GET_XSAVE, "KVM_GET_XSAVE"),
            extendedControlRegisters: try RawState.get(kvm_xcrs.self, fd, CKVM_GET_XCRS, "KVM_GET_XCRS"),
            debugRegisters: try RawState.get(kvm_debugregs.self, fd, CKVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS"),
            localAPIC: try RawState.get(kvm_lapic_state.self, fd, CKVM_GET_LAPIC, "KVM_GET_LAPIC"),
            events: try RawState.get(kvm_vcpu_events.self, fd, CKVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"),
            multiprocessingState: try RawState.get(kvm_mp_state.self, fd, CKVM_GET_MP_STATE, "KVM_GET_MP_STATE"),
            cpuid: cpuid.entries.flatMap { RawState.bytes(of: $0) }, msrs: try readableMSRs(msrIndices))
    }

    /// Reads every MSR of `indices` KVM will give; one it refuses (a feature this guest's
    /// CPUID does not have) is left out, as KVM would refuse it on restore too.
    private func readableMSRs(_ indices: [UInt32]) throws(KVMError) -> [ModelSpecificRegister] {
        var result: [ModelSpecificRegister] = []
        var remaining = indices[...]
        while !remaining.isEmpty {
            let list = KVMList(remaining.map { kvm_msr_entry(index: $0, reserved: 0, data: 0) })
            let read = Int(try Ioctl.call(fd, CKVM_GET_MSRS, "KVM_GET_MSRS", list.raw))
            result += list.entries.prefix(read).map { ModelSpecificRegister($0.index, $0.data) }
            remaining = remaining.dropFirst(read + 1)
        }
        return result
    }

    /// Puts back a state `saveState` read, in the order KVM needs: CPUID first (it decides
    /// which MSRs and XSAVE parts exist), special registers before the LAPIC (the APIC
    /// base), events last (they may refer to everything else).
    public func restoreState(_ state: VCPUSavedState) throws(KVMError) {
        let entrySize = MemoryLayout<kvm_cpuid_entry2>.stride
        guard state.cpuid.count % entrySize == 0 else {
            throw .badSavedState(what: "CPUID", size: state.cpuid.count, expected: entrySize)
        }
        let entries = stride(from: 0, to: state.cpuid.count, by: entrySize).map { offset in
            state.cpuid.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: kvm_cpuid_entry2.self) }
        }
        let cpuid = KVMList(entries)
        try Ioctl.call(fd, CKVM_SET_CPUID2, "KVM_SET_CPUID2", cpuid.raw)
        try RawState.set(kvm_mp_state.self, state.multiprocessingState, "MP state", fd, CKVM_SET_MP_STATE, "KVM_SET_MP_STATE")
        try RawState.set(kvm_regs.self, state.registers, "registers", fd, CKVM_SET_REGS, "KVM_SET_REGS")
        try RawState.set(kvm_sregs.self, state.specialRegisters, "special registers", fd, CKVM_SET_SREGS, "KVM_SET_SREGS")
        try RawState.set(kvm_xsave.self, state.extendedState, "XSAVE area", fd, CKVM_SET_XSAVE, "KVM_SET_XSAVE")
        try RawState.set(kvm_xcrs.self, state.extendedControlRegisters, "XCRs", fd, CKVM_SET_XCRS, "KVM_SET_XCRS")
        try RawState.set(kvm_debugregs.self, state.debugRegisters, "debug registers", fd, CKVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS")
        try RawState.set(kvm_lapic_state.self, state.localAPIC, "local APIC", fd, CKVM_SET_LAPIC, "KVM_SET_LAPIC")
        try setMSRs(state.msrs)
        try RawState.set(kvm_vcpu_events.self, state.events, "vCPU events", fd, CKVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS")
    }

    /// Tells a paused guest's kvmclock that it was stopped on purpose, so that its
    /// watchdogs do not report the pause as a soft lockup. Hosts without it are fine.
    public func notePaused() {
        _ = ckvm_ioctl_value(fd.rawValue, CKVM_KVMCLOCK_CTRL, 0)
    }
}

extension VirtualMachine {
    public func saveState() throws(KVMError) -> VMSavedState {
        var chips: [[UInt8]] = []
        for id in UInt32(0)...2 {
            var chip = kvm_irqchip()
            chip.chip_id = id
            try Ioctl.call(fd, CKVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", &chip)
            chips.append(RawState.bytes(of: chip))
        }
        return VMSavedState(interruptControllers: chips, timer: try RawState.get(kvm_pit_state2.self, fd, CKVM_GET_PIT2, "KVM_GET_PIT2"),
                            clock: try RawState.get(kvm_clock_data.self, fd, CKVM_GET_CLOCK, "KVM_GET_CLOCK"))
    }

    /// Puts back what `saveState` read; the irqchip and PIT must exist already.
    public func restoreState(_ state: VMSavedState) throws(KVMError) {
        guard state.interruptControllers.count == 3 else {
            throw .badSavedState(what: "interrupt controllers", size: state.interruptControllers.count, expected: 3)
        }
        for (id, bytes) in state.interruptControllers.enumerated() {
            var chip = try RawState.value(kvm_irqchip.self, from: bytes, "interrupt controller \(id)")
            guard chip.chip_id == UInt32(id) else { throw .badSavedState(what: "interrupt controller \(id)", size: Int(chip.chip_id), expected: id) }
            try Ioctl.call(fd, CKVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", &chip)
        }
        try RawState.set(kvm_pit_state2.self, state.timer, "PIT", fd, CKVM_SET_PIT2, "KVM_SET_PIT2")
        var clock = try RawState.value(kvm_clock_data.self, from: state.clock, "kvmclock")
        // Only the clock value is restored: the flags KVM reported describe the old host's TSC.
        clock.flags = 0
        try Ioctl.call(fd, CKVM_SET_CLOCK, "KVM_SET_CLOCK", &clock)
    }
}
