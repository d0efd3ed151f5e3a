import Testing
import VMM

@Suite(.enabled(if: KVMHost.isAvailable, KVMHost.skipReason))
struct RealModeTests {
    /// mov al,'H'; out 0x10,al; mov al,'i'; out 0x10,al; hlt
    static let code: [UInt8] = [0xb0, 0x48, 0xe6, 0x10, 0xb0, 0x69, 0xe6, 0x10, 0xf4]

    @Test func realModeCodeWritesTwoBytesAndHalts() throws {
        let hypervisor = try Hypervisor()
        let vm = try hypervisor.createVirtualMachine()
        let memory = try GuestMemory(layout: [(start: 0, size: 0x10000)])
        try vm.map(memory)
        try memory.write(Self.code, at: 0x1000)

        let cpu = try vm.createVirtualCPU(id: 0)
        var special = try cpu.specialRegisters()
        special.cs.base = 0
        special.cs.selector = 0
        try cpu.setSpecialRegisters(special)
        var registers = Registers()
        registers.rip = 0x1000
        registers.rflags = 0x2
        try cpu.setRegisters(registers)

        var exits: [String] = []
        for _ in 0..<10 {
            let more = try cpu.run { exit -> Bool in
                switch exit {
                case .portOut(let port, let size, let count, let data):
                    exits.append("out port=0x\(String(port, radix: 16)) size=\(size) count=\(count) data=\(Array(data))")
                    return true
                case .halt:
                    exits.append("hlt")
                    return false
                case let other:
                    exits.append("unexpected \(other)")
                    return false
                }
            }
            if !more { break }
        }
        #expect(exits == [
            "out port=0x10 size=1 count=1 data=[72]",
            "out port=0x10 size=1 count=1 data=[105]",
            "hlt",
        ])
        #expect(try cpu.registers().rip == 0x1009)
    }

    @Test func hypervisorReportsWhatItNeeds() throws {
        let hypervisor = try Hypervisor()
        #expect(hypervisor.vcpuMmapSize >= 4096)
                let cpuid = try hypervisor.supportedCPUID()
        #expect(cpuid.contains { $0.function == 0 })
    }
}
