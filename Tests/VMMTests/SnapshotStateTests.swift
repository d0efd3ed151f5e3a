@testable import Devices
import Boot
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

/// Saves a device and restores the state into a fresh one, as a snapshot and a restore do.
func roundTrip(_ saved: StatefulDevice, into restored: StatefulDevice) throws {
    var writer = StateWriter()
    saved.saveState(into: &writer)
    var reader = StateReader(writer.bytes)
    try restored.restoreState(from: &reader)
    try reader.finish("test state")
}

func savedBytes(_ device: StatefulDevice) -> [UInt8] {
    var writer = StateWriter()
    device.saveState(into: &writer)
    return writer.bytes
}

/// A copy of guest RAM, as a restored VM maps the snapshot's memory file.
func copyOfMemory(_ memory: GuestMemory) throws -> GuestMemory {
    let copy = try GuestMemory(size: memory.size)
    for region in memory.regions {
        try copy.write(UnsafeRawBufferPointer(start: region.host, count: region.size), at: region.start)
    }
    return copy
}

@Suite struct DeviceStateTests {
    @Test func serialRegistersAndReceivedBytesSurviveARoundTrip() throws {
        let line = RecordingLine()
        let serial = Serial16550(interrupt: line) { _ in }
        serial.write(3, 0x80) // DLAB
        serial.write(0, 0x01)
        serial.write(1, 0x00)
        serial.write(3, 0x1b)
        serial.write(7, 0x5a)
        serial.write(1, 0x01) // received-data interrupt
        #expect(serial.receive(Array("abc".utf8)) == 3)
        #expect(line.isHigh)

        let restoredLine = RecordingLine()
        let restored = Serial16550(interrupt: restoredLine) { _ in }
        try roundTrip(serial, into: restored)
        #expect(savedBytes(restored) == savedBytes(serial))
        #expect(restoredLine.isHigh)
        #expect(restored.read(3) == 0x1b)
        #expect(restored.read(7) == 0x5a)
        #expect([restored.read(0), restored.read(0), restored.read(0)] == Array("abc".utf8))
        #expect(!restoredLine.isHigh)
    }

    @Test func damagedSerialStateIsRefused() {
        let serial = Serial16550(interrupt: RecordingLine()) { _ in }
        var bytes = savedBytes(serial)
        var short = StateReader(Array(bytes.dropLast()))
        #expect(throws: StateError.self) { try serial.restoreState(from: &short) }
        // A receive FIFO longer than the device's capacity was never saved by it.
        bytes.replaceSubrange((bytes.count - 4)..., with: [0x01, 0x10, 0x00, 0x00])
        bytes += [UInt8](repeating: 0x41, count: 0x1001)
        var long = StateReader(bytes)
        #expect(throws: StateError.invalid(what: "16550 receive FIFO")) { try serial.restoreState(from: &long) }
        var badBool = StateReader([0, 3, 8, 0, 12, 0, 7, 0, 0, 0, 0, 0, 0])
        #expect(throws: StateError.invalid(what: "16550 FIFO enable")) { try serial.restoreState(from: &badBool) }
    }

    @Test func i8042HasNoState() throws {
        let device = I8042 {}
        #expect(savedBytes(device).isEmpty)
        try roundTrip(device, into: I8042 {})
    }
}

@Suite struct VirtioStateTests {
    /// A console behind its transport, queues set up and the driver OK, in `memory`.
    func activeConsole(_ memory: GuestMemory, output: RecordingOutput, line: InterruptLine = RecordingLine())
        -> (VirtioConsole, VirtioMMIOTransport) {
        let console = VirtioConsole { output.write($0) }
        let transport = VirtioMMIOTransport(device: console, memory: memory, interrupt: line) { _ in }
        transport.bringUp(bothReady: true)
        return (console, transport)
    }

    @Test func aConsoleRestoredInACopyOfMemoryGoesOnWhereItStopped() throws {
        var driver = try SimulatedDriver()
        let output = RecordingOutput()
        let (console, transport) = activeConsole(driver.memory, output: output)
        #expect(transport.status == 15)
        try driver.memory.write(Array("before".utf8), at: 0x10000)
        try driver.post([(0x10000, 6, false)])
        withUnsafeBytes(of: UInt32(1)) { transport.write(offset: 0x50, data: $0) }
        #expect(output.written == Array("before".utf8))
        console.setSize(columns: 100, rows: 30)
        #expect(console.receive(Array("typed".utf8)) == 5)

        var writer = StateWriter()
        transport.saveState(into: &writer)
        let memory = try copyOfMemory(driver.memory)
        let restoredOutput = RecordingOutput()
        let restoredConsole = VirtioConsole { restoredOutput.write($0) }
        let restoredLine = RecordingLine()
        let restored = VirtioMMIOTransport(device: restoredConsole, memory: memory, interrupt: restoredLine) { _ in }
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        try reader.finish("transport")
        #expect(restored.status == 15)
        #expect(savedBytes(restored) == writer.bytes)

        // The next chain in the copied rings is the driver's second: used index 1 goes on to 2.
        var copiedDriver = driver.copy(in: memory)
        try memory.write(Array("after".utf8), at: 0x10000)
        try copiedDriver.post([(0x10000, 5, false)])
        withUnsafeBytes(of: UInt32(1)) { restored.write(offset: 0x50, data: $0) }
        #expect(restoredOutput.written == Array("after".utf8))
        #expect(try copiedDriver.usedIndex() == 2)
        #expect(restoredConsole.inputSpace == VirtioConsole.inputCapacity - 5)
        var size = [UInt8](repeating: 0, count: 4)
        size.withUnsafeMutableBytes { restored.read(offset: 0x100, into: $0) }
        #expect(size == [100, 0, 30, 0])
    }

    @Test func aTransportStateWithQueuesOutsideMemoryIsRefused() throws {
        let driver = try SimulatedDriver()
        let (_, transport) = activeConsole(driver.memory, output: RecordingOutput())
        var writer = StateWriter()
        transport.saveState(into: &writer)
        let small = try GuestMemory(size: 16 << 10)
        let restored = VirtioMMIOTransport(device: VirtioConsole { _ in }, memory: small, interrupt: RecordingLine()) { _ in }
        var reader = StateReader(writer.bytes)
        #expect(throws: StateError.self) { try restored.restoreState(from: &reader) }
        // Another device type has another queue count.
        let block = VirtioMMIOTransport(device: VirtioBlock(backend: MemoryDisk(sectors: 8), identifier: "x"), memory: driver.memory,
                                        interrupt: RecordingLine()) { _ in }
        var other = StateReader(writer.bytes)
        #expect(throws: StateError.invalid(what: "queue count of virtio device 2")) { try block.restoreState(from: &other) }
    }

    @Test func aBlockDeviceKeepsItsBrokenQueue() throws {
        let block = VirtioBlock(backend: MemoryDisk(sectors: 8), identifier: "disk")
        #expect(savedBytes(block) == [0])
        var reader = StateReader([1])
        try block.restoreState(from: &reader)
        #expect(savedBytes(block) == [1])
    }

    @Test func aNinePSessionIsReopenedByPath() throws {
        let directory = TemporaryDirectory()
        directory.write("notes.txt", "kept across the snapshot")
        let client = try NinePClient(directory)
        client.walk(1, "notes.txt")
        guard case .lopen = client.send(.lopen(fid: 1, flags: UInt32(O_RDONLY))) else { Issue.record("open failed"); return }
        client.walk(2)
        var writer = StateWriter()
        client.server.saveState(into: &writer)

        let restored = NinePServer(directory: try SharedDirectory(path: directory.path, readOnly: false))
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        #expect(reader.isAtEnd)
        #expect(restored.fidCount == 3)
        #expect(restored.openFileCount == 1)
        #expect(restored.messageSize == NinePServer.maximumMessageSize)
        let again = NinePClient(server: restored)
        #expect(again.read(1) == "kept across the snapshot")

        // A name that could leave the share is not a name the server saved.
        var hostile = StateWriter()
        hostile.put(UInt32(8192))
        hostile.put(UInt32(0))
        hostile.put(UInt32(1))
        hostile.put(UInt32(7))
        hostile.put(UInt32(1))
        hostile.put("..")
        var hostileReader = StateReader(hostile.bytes)
        #expect(throws: StateError.invalid(what: "9p name")) { try restored.restoreState(from: &hostileReader) }
    }
}

@Suite struct SnapshotFileTests {
    func sample() -> VMSnapshot {
        VMSnapshot(machine: MachineSpec(kernel: "", commandLine: KernelCommandLine("console=hvc0"), memorySize: 64 << 20, vcpuCount: 2,
                                        acpi: true, console: .virtio,
                                        devices: [.console, .disk(readOnly: true), .share(tag: "srv", readOnly: false),
                                                  .network(mac: [2, 0, 0, 0, 0, 1], offloads: false), .workOrder, .vsock,
                                                  .entropy(.init(bytesPerSecond: 4096, burst: 512)), .commandStreams]),
                   disks: [.init(size: 4096, modified: 1_700_000_000, modifiedNanoseconds: 5)],
                   hostCPU: 0x1234_5678_9abc_def0,
                   vm: VMSavedState(interruptControllers: [[1, 2], [3], [4, 5, 6]], timer: [7], clock: [8, 9]),
                   cpus: (0..<2).map { id in
                       VCPUSavedState(registers: [UInt8(id)], specialRegisters: [2], extendedState: [3], extendedControlRegisters: [4],
                                      debugRegisters: [5], localAPIC: [6], events: [7], multiprocessingState: [8], cpuid: [9],
                                      msrs: [ModelSpecificRegister(0x10, 42)])
                   },
                   devices: [.init(kind: "serial", slot: 0, state: [1]), .init(kind: "i8042", slot: 0, state: []),
                             .init(kind: "virtio-2", slot: 0, state: [2, 3])], exitStatus: 3)
    }

    @Test func theStateSurvivesEncodingAndDecoding() throws {
        let snapshot = sample()
        let bytes = snapshot.file.encoded()
        #expect(Array(bytes.prefix(16)) == Array("microvm-snapshot".utf8))
        #expect(try VMSnapshot(SnapshotFile.decode(bytes)) == snapshot)
    }

    @Test func damagedFilesAreRefusedWithTheirReason() throws {
        let bytes = sample().file.encoded()
        #expect(throws: SnapshotError.checksum) { try SnapshotFile.decode(Array(bytes.dropLast(7))) }
        #expect(throws: SnapshotError.notASnapshot) { try SnapshotFile.decode(Array(bytes.prefix(10))) }
        var flipped = bytes
        flipped[100] ^= 0x40
        #expect(throws: SnapshotError.checksum) { try SnapshotFile.decode(flipped) }
        // Version 4 kept no machine spec: such a file is refused, not reinterpreted.
        var older = bytes.dropLast(4) + []
        older[16] = 4
        older += withUnsafeBytes(of: CRC32.checksum(older).littleEndian) { Array($0) }
        #expect(throws: SnapshotError.version(found: 4, expected: 5)) { try SnapshotFile.decode(Array(older)) }
        #expect(SnapshotError.version(found: 4, expected: 5).description == "the snapshot has format version 4; this microvm reads version 5")
        #expect(throws: SnapshotError.notASnapshot) { try SnapshotFile.decode(Array("not a snapshot at all, just text".utf8)) }

        // A section longer than what follows it, with a checksum that matches.
        var file = SnapshotFile()
        file.append("CONF", [1, 2, 3])
        var lying = file.encoded().dropLast(4) + []
        lying[28] = 0xff
        lying += withUnsafeBytes(of: CRC32.checksum(lying).littleEndian) { Array($0) }
        #expect(throws: SnapshotError.truncated) { try SnapshotFile.decode(Array(lying)) }
        #expect(throws: SnapshotError.self) { try VMSnapshot(file) }
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xcbf4_3926)
    }

    @Test func theHostFingerprintFollowsFeaturesNotTheHostCore() {
        let entries = [CPUIDEntry(function: 1, eax: 0x806c1, ecx: 0x7ffa_fbbf)]
        var changed = entries
        changed[0].ecx ^= 1 << 5
        #expect(VMSnapshot.hostFingerprint(entries) == VMSnapshot.hostFingerprint(entries))
        #expect(VMSnapshot.hostFingerprint(entries) != VMSnapshot.hostFingerprint(changed))
        // The APIC ID of the host core KVM answered on is not part of it.
        var otherCore = entries
        otherCore[0].ebx = 0x0300_0000
        #expect(VMSnapshot.hostFingerprint(entries) == VMSnapshot.hostFingerprint(otherCore))
        let x2APIC = [CPUIDEntry(function: 0xb, index: 0, flags: 1, edx: 0)]
        #expect(VMSnapshot.hostFingerprint(x2APIC) == VMSnapshot.hostFingerprint([CPUIDEntry(function: 0xb, index: 0, flags: 1, edx: 1)]))
    }
}

@Suite struct ControlProtocolTests {
    @Test func requestsParse() throws {
        #expect(try ControlRequest.parse(Array(#"{"op":"pause"}"#.utf8)).get() == .pause)
        #expect(try ControlRequest.parse(Array(#" { "op" : "snapshot", "path": "/tmp/a \"b\".snap" } "#.utf8)).get()
            == .snapshot(path: "/tmp/a \"b\".snap"))
        for request in [ControlRequest.pause, .resume, .status, .stop, .snapshot(path: "/x/\u{e9}\n")] {
            #expect(try ControlRequest.parse(Array(request.encoded.utf8)).get() == request)
        }
    }

    @Test func badRequestsSayWhatIsWrong() {
        func error(_ text: String) -> String? {
            if case .failure(let error) = ControlRequest.parse(Array(text.utf8)) { return error.description }
            return nil
        }
        #expect(error("") == "expected '{' at byte 0")
        #expect(error(#"{"op":"reboot"}"#) == #"unknown op "reboot"; the ops are pause, resume, status, stop, snapshot"#)
        #expect(error(#"{"op":"snapshot"}"#) == #""snapshot" needs a "path" string"#)
        #expect(error(#"{"op":"pause","path":"/x"}"#) == #""pause" takes no member "path""#)
        #expect(error(#"{"op":["pause"]}"#) == "nested objects and arrays are not part of the protocol")
        #expect(error(#"{"op":"pause"} trailing"#) == "text after the object")
        #expect(error(#"{"op":"pa\u00"}"#) != nil)
        #expect(error(#"{"op":1e999}"#) != nil)
        #expect(error("{\"op\":\"\u{1}\"}") != nil)
        #expect(error(#"{"path":"x"}"#) == #"the request has no "op" string"#)
    }

    @Test func answersEncodeAsOneLine() throws {
        let answer = JSONObject([("ok", .bool(false)), ("error", .string("line\none \"quoted\"")), ("n", .number(3)), ("x", .null)])
        #expect(answer.encoded == #"{"ok":false,"error":"line\none \"quoted\"","n":3,"x":null}"#)
        #expect(try JSONObject.parse(Array(answer.encoded.utf8)) == answer)
    }
}

@Suite struct PauseTests {
    @Test func aPausedVCPUParksUntilResumedAndAStopReleasesIt() throws {
        let memory = try GuestMemory(size: 1 << 20)
        let control = try RunControl()
        // An empty script: each run returns at once, as a guest that keeps exiting would.
        let cpu = ScriptedCPU([])
        let slot = control.register { cpu.requestImmediateExit() }
        let runner = VCPURunner(cpu: cpu, memory: memory, ioBus: Bus(), mmioBus: Bus(), control: control, profile: .hardwareVirtualization)
        let thread = try NativeThread(name: "test-vcpu") {
            runner.run()
            control.finished(slot)
        }
        control.attach(thread: thread.handle, to: slot)
        #expect(control.pause(vcpus: 1))
        #expect(control.isPausing)
        control.resume()
        #expect(!control.isPausing)
        #expect(control.pause(vcpus: 1))
        control.stop(.stopRequested)
        thread.join(every: 50) { control.kickAgain() }
        #expect(control.exit == .stopRequested)
        #expect(!control.gate.waitUntilParked(1, timeoutMilliseconds: 10))
    }
}
