import Arch
import KVM
import Memory
import X86

/// Turns a KVM internal error into one line a user can act on: what failed, where,
/// the instruction bytes, and whether this host is one that emulates guest code.
enum GuestFaultDiagnosis {
        static func describe(suberror: UInt32, cpu: some GuestCPU, memory: GuestMemory, profile: HostProfile) -> String {
        var line = "guest stopped: KVM internal error: \(VCPUExit.describeSuberror(suberror)) (suberror \(suberror))"
        if let registers = try? cpu.registers() {
            line += " at RIP 0x\(String(registers.rip, radix: 16))"
            let bytes = instructionBytes(rip: registers.rip, cpu: cpu, memory: memory)
            if !bytes.isEmpty {
                line += ", instruction bytes " + bytes.map { $0 < 16 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined(separator: " ")
            }
        }
        if profile == .softwareEmulation {
            line += "; \(profile.explanation), so this guest needs a host with VT-x or AMD-V"
        }
        return line
    }

    /// Up to 15 bytes at RIP, read through the guest's page tables when paging is on.
    static func instructionBytes(rip: UInt64, cpu: some GuestCPU, memory: GuestMemory) -> [UInt8] {
        guard let special = try? cpu.specialRegisters() else { return [] }
        let linear = special.efer & SpecialRegisters.eferLongModeActive != 0 ? rip : special.cs.base &+ rip
        let physical: GuestAddress?
        if special.cr0 & SpecialRegisters.cr0Paging != 0 {
            physical = (try? cpu.translate(linear)) ?? nil
        } else {
            physical = GuestAddress(linear)
        }
        guard let physical else { return [] }
        // Stop at the page end: the next page may not be mapped where this one is.
        let count = Int(min(15, 0x1000 - physical.rawValue % 0x1000))
        return (try? memory.read(at: physical, count: count)) ?? []
    }
}
