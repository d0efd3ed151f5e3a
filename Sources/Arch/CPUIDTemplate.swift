import X86

/// The CPUID a vCPU sees: KVM's supported set, with the vCPU's APIC ID, a topology
/// of `cpus` single-threaded cores in one package, the hypervisor bit, and the
/// host profile's paravirtual features withheld.
public enum CPUIDTemplate {
    static let hypervisorBit: UInt32 = 1 << 31
    static let hyperThreadingBit: UInt32 = 1 << 28

    public static func entries(supported: [CPUIDEntry], vcpu: UInt32, cpus: Int = 1,
                               profile: HostProfile = .hardwareVirtualization) -> [CPUIDEntry] {
        let count = UInt32(cpus)
        // Bits of the APIC ID that number the cores: enough for `cpus`.
        let coreBits = UInt32(count > 1 ? 32 - (count - 1).leadingZeroBitCount : 0)
        var entries = supported
        for index in entries.indices {
            var entry = entries[index]
            switch entry.function {
            case 1:
                // EBX[31:24] initial APIC ID, [23:16] logical processors in the package.
                entry.ebx = (entry.ebx & 0x0000_ffff) | (vcpu << 24) | (min(count, 255) << 16)
                entry.edx = count > 1 ? entry.edx | hyperThreadingBit : entry.edx & ~hyperThreadingBit
                entry.ecx |= hypervisorBit
            case 4:
                // EAX[31:26]: cores in the package - 1; [25:14]: threads sharing this cache - 1.
                let level = (entry.eax >> 5) & 0x7
                let sharing = level == 3 ? count - 1 : 0
                entry.eax = (entry.eax & 0x3fff) | (min(count - 1, 63) << 26) | (sharing << 14)
            case 0xb, 0x1f:
                switch entry.index {
                case 0: // SMT level: one thread per core.
                    entry.eax = 0
                    entry.ebx = 1
                    entry.ecx = (1 << 8) | 0
                case 1: // Core level: the whole package.
                    entry.eax = coreBits
                    entry.ebx = count
                    entry.ecx = (2 << 8) | 1
                default:
                    entry.eax = 0
                    entry.ebx = 0
                    entry.ecx = entry.index
                }
                entry.edx = vcpu
            case 0x8000_0008:
                // ECX[15:12] APIC ID bits for cores, [7:0] cores - 1 (AMD).
                entry.ecx = (entry.ecx & ~0xf0ff) | (coreBits << 12) | (count - 1)
            case 0x8000_001e:
                // EAX extended APIC ID; EBX[7:0] core ID, [15:8] threads per core - 1 (AMD).
                entry.eax = vcpu
                entry.ebx = (entry.ebx & ~0xffff) | (vcpu & 0xff)
                entry.ecx &= ~0xff
            case 0x4000_0001:
                // KVM_CPUID_FEATURES.
                entry.eax &= ~profile.hiddenParavirtualFeatures
            default:
                break
            }
            entries[index] = entry
        }
        return entries
    }
}
