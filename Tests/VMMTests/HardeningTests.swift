@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

/// What a guest can make the host do is bounded by constants, and the device model's
/// state changes cannot race each other.
@Suite struct BoundedDeviceWorkTests {
    /// Output leaves straight from guest memory, and one chain yields at most
    /// `maximumChainOutput` bytes however long its buffers claim to be.
    @Test func consoleOutputIsReadInPlaceAndBoundedPerChain() throws {
        var tx = try SimulatedDriver(memorySize: 4 << 20)
        let region = tx.memory.regions[0]
        let seen = Mutex<(bytes: Int, insideGuestRAM: Bool)>((0, true))
        let console = VirtioConsole { bytes in
            let start = UInt(bitPattern: bytes.baseAddress)
            let inside = start >= UInt(bitPattern: region.host) && start + UInt(bytes.count) <= UInt(bitPattern: region.host) + UInt(region.size)
            seen.withLock { $0 = ($0.bytes + bytes.count, $0.insideGuestRAM && inside) }
        }
        console.activate(queues: [nil, try tx.queue()], features: 0, interrupt: RecordingInterrupt())
        // Three buffers of 1.5 MiB each over the same memory: 4.5 MiB claimed by one chain.
        try tx.post([(0x100000, 3 << 19, false), (0x100000, 3 << 19, false), (0x100000, 3 << 19, false)])
        console.queueNotified(1)
        let result = seen.withLock { $0 }
        #expect(result.bytes == VirtioConsole.maximumChainOutput)
        #expect(result.insideGuestRAM, "output must point into guest RAM, not into a copy")
        #expect(try tx.usedIndex() == 1, "the chain is completed all the same")
    }

    @Test func aChainLongerThanTheBoundBreaksTheQueue() throws {
        var driver = try SimulatedDriver(size: 8)
        let table: GuestAddress = 0x40000
        let entries = UInt16(Virtqueue.maximumChainLength + 1)
        for index in 0..<entries {
            try driver.writeDescriptor(index, address: 0x10000, length: 8, flags: index == entries - 1 ? 0 : 1, next: index + 1, table: table)
        }
        try driver.writeDescriptor(0, address: table.rawValue, length: UInt32(entries) * 16, flags: 4, next: 0)
        try driver.publish(0)
        #expect(throws: VirtqueueError.chainTooLong(head: 0)) { try driver.queue().next() }
    }

    /// Steady input read in part keeps the 16550's FIFO in its fixed storage: 16 MiB
    /// pass through a guest that reads half of what is waiting each time.
    @Test func serialReceiveStorageStaysFixedUnderSteadyInput() {
        let serial = Serial16550(interrupt: RecordingLine()) { _ in }
        let chunk = [UInt8](repeating: 0x61, count: 4096)
        var fed = 0
        var largest = 0
        while fed < 16 << 20 {
            fed += serial.receive(chunk)
            for _ in 0..<(Serial16550.receiveCapacity - serial.receiveSpace) / 2 { _ = serial.read(0) }
            largest = max(largest, serial.state.withLock { $0.receive.capacity })
        }
        #expect(largest <= Serial16550.receiveCapacity)
    }

    @Test func byteQueueIsAFixedFIFO() {
        var queue = ByteQueue(capacity: 4)
        #expect(queue.push(contentsOf: [1, 2, 3]) == 3)
        #expect(queue.pop() == 1)
        #expect(queue.push(contentsOf: [4, 5, 6]) == 2)
        #expect([queue.pop(), queue.pop(), queue.pop(), queue.pop(), queue.pop()] == [2, 3, 4, 5, nil])
        var history = ByteQueue(capacity: 4)
        [UInt8]([1, 2, 3]).withUnsafeBytes { history.pushDroppingOldest($0) }
        [UInt8]([4, 5]).withUnsafeBytes { history.pushDroppingOldest($0) }
        #expect(history.contents == [2, 3, 4, 5])
        Array(10..<20).map(UInt8.init).withUnsafeBytes { history.pushDroppingOldest($0) }
        #expect(history.contents == [16, 17, 18, 19])
    }
}

/// A device that records what the transport tells it, and can hold a reset in progress.
final class RecordingDevice: VirtioDevice, @unchecked Sendable {
    let calls = Mutex<[String]>([])
    /// While set, `reset()` waits for `releaseReset` after saying it started.
    let resetStarted = Semaphore()
    let releaseReset = Semaphore()
    let holdReset = Atomic<Bool>(false)

    var deviceType: UInt32 { 42 }
    var maximumQueueSizes: [UInt16] { [8, 8] }
    var deviceFeatures: UInt64 { 0 }
    func readConfiguration(offset: Int, into data: UnsafeMutableRawBufferPointer) {}
    func activate(queues: [Virtqueue?], features: UInt64, interrupt: VirtioInterrupt) {
        calls.withLock { $0.append("activate " + queues.map { $0 == nil ? "-" : "q" }.joined()) }
    }
    func queueNotified(_ index: Int) { calls.withLock { $0.append("notify \(index)") } }
    func saveState(into writer: inout StateWriter) {}
    func restoreState(from reader: inout StateReader) throws(StateError) {}
    func reset() {
        if holdReset.load(ordering: .acquiring) {
            resetStarted.signal()
            releaseReset.wait()
        }
        calls.withLock { $0.append("reset") }
    }
    var recorded: [String] { calls.withLock { $0 } }
}

extension VirtioMMIOTransport {
    /// Drives the transport as a driver does up to DRIVER_OK, with VERSION_1 and two queues
    /// of 8 (rings at 0x4000 and 0x1000): queue 1 is made ready, queue 0 only when `bothReady`.
    func bringUp(bothReady: Bool) {
        func write(_ offset: UInt64, _ value: UInt32) { withUnsafeBytes(of: value) { self.write(offset: offset, data: $0) } }
        write(0x70, 1)
        write(0x70, 3)
        write(0x24, 1)
        write(0x20, 1)
        write(0x70, 11)
        for (queue, base) in [(UInt32(0), UInt32(0x4000)), (1, 0x1000)] {
            write(0x30, queue)
            write(0x38, 8)
            write(0x80, base)
            write(0x90, base + 0x1000)
            write(0xa0, base + 0x2000)
            if queue == 1 || bothReady { write(0x44, 1) }
        }
        write(0x70, 15)
    }
}

final class Semaphore: @unchecked Sendable {
    private var semaphore = sem_t()
    init() { sem_init(&semaphore, 0, 0) }
    deinit { sem_destroy(&semaphore) }
    func signal() { sem_post(&semaphore) }
    func wait() { while sem_wait(&semaphore) != 0 {} }
}

@Suite struct TransportLifecycleTests {
    let memory: GuestMemory
    let device = RecordingDevice()
    let transport: VirtioMMIOTransport

    init() throws {
        memory = try GuestMemory(size: 1 << 20)
        transport = VirtioMMIOTransport(device: device, memory: memory, interrupt: RecordingLine()) { _ in }
    }

    func write(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value) { transport.write(offset: offset, data: $0) }
    }

    /// A queue the driver never made ready is not handed to the device and its
    /// notifications are ignored: nothing walks rings at whatever address it holds.
    @Test func queuesThatAreNotReadyAreNeverWalked() {
        transport.bringUp(bothReady: false)
        write(0x50, 0)
        write(0x50, 1)
        write(0x50, 7)
        #expect(device.recorded == ["activate -q", "notify 1"])
    }

    /// A reset on one vCPU and the driver's next activation on another: the device sees
    /// the reset finish before the activation, never the activation wiped by a late reset.
    @Test func aResetInProgressIsNotOvertakenByAnActivation() throws {
        transport.bringUp(bothReady: true)
        device.holdReset.store(true, ordering: .releasing)
        let transport = self.transport
        let resetter = try NativeThread(name: "reset") {
            withUnsafeBytes(of: UInt32(0)) { transport.write(offset: 0x70, data: $0) }
        }
        device.resetStarted.wait()
        let activator = try NativeThread(name: "activate") { transport.bringUp(bothReady: true) }
        // Give the activation every chance to overtake the held reset.
        usleep(100_000)
        device.releaseReset.signal()
        resetter.join(every: 1000) {}
        activator.join(every: 1000) {}
        #expect(device.recorded == ["activate qq", "reset", "activate qq"])
    }
}

/// A vCPU that replays a script of exits, for the run loop without /dev/kvm.
final class ScriptedCPU: GuestCPU, @unchecked Sendable {
    enum Step {
        case portOut(UInt16, [UInt8], size: Int)
        case portIn(UInt16, size: Int, count: Int)
        case mmioRead(UInt64, Int)
        case exit(VCPUExit)
        case fail(KVMError)
    }

    let id: UInt32 = 0
    private var steps: [Step]
    private(set) var portInData: [[UInt8]] = []
    private(set) var mmioReadData: [[UInt8]] = []
    let immediateExit = Atomic<Bool>(false)
    var registerState = Registers()
    var specialState = SpecialRegisters()
    var translation: [UInt64: GuestAddress] = [:]

    init(_ steps: [Step]) { self.steps = steps }

    func run<Result>(_ handle: (VCPUExit) -> Result) throws(KVMError) -> Result {
        if immediateExit.exchange(false, ordering: .acquiringAndReleasing) || steps.isEmpty { return handle(.interrupted) }
        switch steps.removeFirst() {
        case .portOut(let port, var bytes, let size):
            let count = bytes.count / size
            return bytes.withUnsafeMutableBytes { handle(.portOut(port: port, size: size, count: count, data: UnsafeRawBufferPointer($0))) }
        case .portIn(let port, let size, let count):
            var bytes = [UInt8](repeating: 0, count: size * count)
            let result = bytes.withUnsafeMutableBytes { handle(.portIn(port: port, size: size, count: count, data: $0)) }
            portInData.append(bytes)
            return result
        case .mmioRead(let address, let length):
            var bytes = [UInt8](repeating: 0, count: length)
            let result = bytes.withUnsafeMutableBytes { handle(.mmioRead(address: address, data: $0)) }
            mmioReadData.append(bytes)
            return result
        case .exit(let exit):
            return handle(exit)
        case .fail(let error):
            throw error
        }
    }

    func requestImmediateExit() { immediateExit.store(true, ordering: .releasing) }
    func registers() throws(KVMError) -> Registers { registerState }
    func specialRegisters() throws(KVMError) -> SpecialRegisters { specialState }
    func translate(_ linearAddress: UInt64) throws(KVMError) -> GuestAddress? { translation[linearAddress] }
}

/// A port device that answers reads with a counter and records writes.
final class CountingDevice: BusDevice, @unchecked Sendable {
    var written: [UInt8] = []
    var next: UInt8 = 0x10
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices {
            data[index] = next
            next += 1
        }
    }
    func write(offset: UInt64, data: UnsafeRawBufferPointer) { written += data }
}

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

@Suite struct RunControlTests {
    /// A vCPU registered after the stop is interrupted at once, before its thread exists.
    @Test func aLateVCPUIsStoppedAtOnce() throws {
        let control = try RunControl()
        let interrupted = Atomic<Int>(0)
        _ = control.register { interrupted.add(1, ordering: .relaxed) }
        control.stop(.reset)
        control.stop(.userQuit)
        _ = control.register { interrupted.add(10, ordering: .relaxed) }
        #expect(interrupted.load(ordering: .relaxed) == 11)
        #expect(control.exit == .reset, "the first reason wins")
    }
}
