@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

@Suite struct RunLoopTests {
    let memory: GuestMemory
    let ioBus = Bus()
    let mmioBus = Bus()
    let port = CountingDevice()
    let mmio = CountingDevice()

    init() throws {
        memory = try GuestMemory(size: 1 << 20)
        try ioBus.insert(port, base: 0x3f8, size: 8)
        try mmioBus.insert(mmio, base: 0xd000_0000, size: 0x1000)
    }

    func run(_ cpu: ScriptedCPU, profile: HostProfile = .hardwareVirtualization) throws -> VMExit? {
        let control = try RunControl()
        _ = control.register { cpu.requestImmediateExit() }
        VCPURunner(cpu: cpu, memory: memory, ioBus: ioBus, mmioBus: mmioBus, control: control, profile: profile).run()
        return control.exit
    }

    @Test func portAndMMIOExitsReachTheirDevices() throws {
        let cpu = ScriptedCPU([
            .portOut(0x3f8, [0x41, 0x42, 0x43], size: 1), // rep outsb: three items
            .portIn(0x3f9, size: 2, count: 2),
            .mmioRead(0xd000_0010, 4),
            .portOut(0x1234, [0xff], size: 1), // nobody's port
            .exit(.systemEvent(type: 2)),
        ])
        #expect(try run(cpu) == .reset)
        #expect(port.written == [0x41, 0x42, 0x43])
        #expect(cpu.portInData == [[0x10, 0x11, 0x12, 0x13]])
        #expect(cpu.mmioReadData == [[0x10, 0x11, 0x12, 0x13]])
    }

    @Test func exitsAreCountedByReasonWhenTheLoopEnds() throws {
        let cpu = ScriptedCPU([
            .portOut(0x3f8, [0x41, 0x42, 0x43], size: 1),
            .portOut(0x3f8, [0x44], size: 1),
            .portIn(0x3f9, size: 1, count: 1),
            .mmioRead(0xd000_0010, 4),
            .exit(.halt),
            .exit(.systemEvent(type: 2)),
        ])
        let control = try RunControl()
        _ = control.register { cpu.requestImmediateExit() }
        let counted = Counts()
        VCPURunner(cpu: cpu, memory: memory, ioBus: ioBus, mmioBus: mmioBus, control: control, profile: .hardwareVirtualization,
                   finish: { counted.value = $0 }).run()
        var expected = ExitCounts()
        expected.portOut = 2
        expected.portIn = 1
        expected.mmioRead = 1
        expected.other = 2
        #expect(counted.value == expected)
        let events = BootEvents()
        events.add(expected)
        events.add(expected)
        #expect(events.json.hasSuffix("\"exits\":{\"io_in\":2,\"io_out\":4,\"mmio_read\":2,\"mmio_write\":0,\"interrupted\":0,\"other\":4}}"))
    }

    final class Counts: @unchecked Sendable {
        var value: ExitCounts?
    }

    @Test func everyWayOfStoppingBecomesItsExit() throws {
        var registers = Registers()
        registers.rip = 0xdead
        let triple = ScriptedCPU([.exit(.shutdown)])
        triple.registerState = registers
        #expect(try run(triple) == .tripleFault(rip: 0xdead))
        #expect(try run(ScriptedCPU([.exit(.systemEvent(type: VCPUExit.systemEventCrash))]))
            == .internalError("guest stopped: the guest reported a crash (KVM_SYSTEM_EVENT_CRASH)"))
        #expect(try run(ScriptedCPU([.exit(.failEntry(hardwareReason: 0x21, cpu: 0))]))
            == .internalError("guest stopped: KVM could not enter the guest (hardware entry failure reason 0x21)"))
        #expect(try run(ScriptedCPU([.exit(.unknown(reason: 99))])) == .vmmError("vCPU 0: unhandled KVM exit reason 99"))
        #expect(try run(ScriptedCPU([.fail(.ioctlFailed(request: "KVM_RUN", errno: .badAddress))]))
            == .vmmError("vCPU 0: KVM_RUN failed: Bad address (EFAULT)"))
    }

    /// An emulation failure names the instruction bytes at RIP, read through the guest's
    /// page tables, and says why on an emulating host.
    @Test func anInternalErrorIsDiagnosedWithTheInstructionBytes() throws {
        try memory.write([0xcc, 0x48, 0x8d], at: 0x5000)
        let cpu = ScriptedCPU([.exit(.internalError(suberror: 1, data: []))])
        cpu.registerState.rip = 0xffff_8000_0000_1000
        cpu.specialState.cr0 = SpecialRegisters.cr0Paging
        cpu.specialState.efer = SpecialRegisters.eferLongModeActive
        cpu.translation[0xffff_8000_0000_1000] = 0x5000
        guard case .internalError(let line) = try run(cpu, profile: .softwareEmulation) else {
            Issue.record("no internal error")
            return
        }
        #expect(line.hasPrefix("guest stopped: KVM internal error: emulation failure (suberror 1) at RIP 0xffff800000001000, instruction bytes cc 48 8d 00"))
        #expect(line.contains("needs a host with VT-x or AMD-V"))
    }

    /// A stop from another thread ends a vCPU that would otherwise run forever.
    @Test func aStopFromAnotherThreadEndsTheLoop() throws {
        let cpu = ScriptedCPU(Array(repeating: .exit(.halt), count: 1_000_000))
        let control = try RunControl()
        _ = control.register { cpu.requestImmediateExit() }
        let runner = VCPURunner(cpu: cpu, memory: memory, ioBus: ioBus, mmioBus: mmioBus, control: control, profile: .hardwareVirtualization)
        let thread = try NativeThread(name: "scripted") { runner.run() }
        control.stop(.stopRequested)
        thread.join(every: 1000) { Issue.record("the loop did not stop") }
        #expect(control.exit == .stopRequested)
    }

    @Test func aThreadThatFailsToPrepareStopsTheVM() throws {
        struct Refused: Error, CustomStringConvertible { var description: String { "refused" } }
        let control = try RunControl()
        VCPURunner(cpu: ScriptedCPU([]), memory: memory, ioBus: ioBus, mmioBus: mmioBus, control: control,
                   profile: .hardwareVirtualization, prepare: { throw Refused() }).run()
        #expect(control.exit == .vmmError("vCPU 0: refused"))
    }
}
