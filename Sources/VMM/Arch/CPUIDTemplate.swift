import CKVM

/// The CPUID a vCPU sees: KVM's supported set, with the vCPU's APIC ID and the
/// hypervisor bit.
public enum CPUIDTemplate {
    static let hypervisorBit: UInt32 = 1 << 31

    public static func entries(supported: [kvm_cpuid_entry2], vcpu: UInt32) -> [kvm_cpuid_entry2] {
        var entries = supported
        for index in entries.indices {
            switch entries[index].function {
            case 1:
                // EBX[31:24]: initial APIC ID.
                entries[index].ebx = (entries[index].ebx & 0x00ff_ffff) | (vcpu << 24)
                entries[index].ecx |= hypervisorBit
            case 0xb, 0x1f:
                // EDX: x2APIC ID.
                entries[index].edx = vcpu
            default:
                break
            }
        }
        return entries
    }
}
