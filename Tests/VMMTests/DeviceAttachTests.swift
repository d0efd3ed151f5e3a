@testable import Devices
import Glibc
@testable import Memory
import Testing

/// Devices built without their host resources, as a VM template's are, and bound per run:
/// through the transport, as the guest's driver sees them, before and after a snapshot.
@Suite struct DeviceAttachTests {
    let memory: GuestMemory
    let line = RecordingLine()
    static let mac: [UInt8] = [0x02, 1, 2, 3, 4, 5]

    init() throws {
        memory = try GuestMemory(size: 1 << 20)
    }

    func transport(_ device: VirtioDevice, line: RecordingLine? = nil) -> VirtioMMIOTransport {
        VirtioMMIOTransport(device: device, memory: memory, interrupt: line ?? self.line) { _ in }
    }

    /// A read of `sectors` sectors from sector 0 through queue 0 as `bringUp` laid it out
    /// (rings at 0x4000, 8 entries); returns the status byte.
    func read(_ transport: VirtioMMIOTransport, driver: inout SimulatedDriver, sectors: UInt32) throws -> UInt8 {
        try memory.store(VirtioBlock.RequestType.read, at: 0x10000)
        try memory.store(UInt64(0), at: 0x10008)
        try memory.store(UInt8(0xee), at: 0x30000)
        try driver.post([(0x10000, 16, false), (0x20000, sectors * 512, true), (0x30000, 1, true)])
        transport.writeRegister(0x50, 0)
        return try memory.load(UInt8.self, at: 0x30000)
    }

    @Test func aDiskAttachedToAnActiveSlotIsAnnouncedAndServed() throws {
        let block = VirtioBlock(identifier: "microvm-disk1")
        let transport = transport(block)
        transport.bringUp(bothReady: true)
        var driver = SimulatedDriver(sharing: memory, size: 8, rings: 0x4000)
        #expect(transport.status == 15)
        #expect(transport.configuration(UInt64.self, at: 0) == 0)
        #expect(try read(transport, driver: &driver, sectors: 1) == VirtioBlock.Status.ioError)
        transport.writeRegister(0x64, 1)
        let generation = transport.register(0xfc)
        #expect(transport.register(0x60) == 0 && !line.isHigh)

        let disk = MemoryDisk(sectors: 64)
        try block.attach(disk)
        #expect(transport.register(0x60) == 2, "the configuration-change bit")
        #expect(line.isHigh)
        #expect(transport.register(0xfc) != generation, "the driver sees the configuration move")
        #expect(transport.configuration(UInt64.self, at: 0) == 64)
        #expect(try read(transport, driver: &driver, sectors: 2) == VirtioBlock.Status.ok)
        #expect(try memory.read(at: 0x20000, count: 1024) == Array(disk.bytes[0..<1024]))

        #expect(throws: AttachError.attached(device: "disk microvm-disk1")) { try block.attach(MemoryDisk(sectors: 8)) }
        #expect(transport.configuration(UInt64.self, at: 0) == 64)
    }

    /// Attached before the driver activates: the activation brings the configuration
    /// change, which Linux keeps until the driver's probe ends and then acts on. A disk
    /// given at build needs none.
    @Test func aDiskAttachedBeforeActivationIsAnnouncedWhenTheDriverActivates() throws {
        let block = VirtioBlock(identifier: "d")
        let transport = transport(block)
        try block.attach(MemoryDisk(sectors: 16))
        #expect(transport.register(0x60) == 0)
        transport.bringUp(bothReady: true)
        #expect(transport.register(0x60) == 2)
        #expect(transport.configuration(UInt64.self, at: 0) == 16)

        let otherLine = RecordingLine()
        let built = self.transport(VirtioBlock(backend: MemoryDisk(sectors: 16), identifier: "e"), line: otherLine)
        built.bringUp(bothReady: true)
        #expect(built.register(0x60) == 0 && !otherLine.isHigh)
    }

    /// A template's empty slot, snapshotted with the guest up, restored and given the run's disk.
    @Test func aRestoredEmptySlotTakesTheRunsDisk() throws {
        let template = transport(VirtioBlock(identifier: "microvm-disk0"))
        template.bringUp(bothReady: true)
        var writer = StateWriter()
        template.saveState(into: &writer)

        let block = VirtioBlock(identifier: "microvm-disk0")
        let restoredLine = RecordingLine()
        let restored = transport(block, line: restoredLine)
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        #expect(reader.isAtEnd)
        #expect(restored.status == 15 && restored.register(0x60) == 0)
        let disk = MemoryDisk(sectors: 32)
        try block.attach(disk)
        #expect(restored.register(0x60) == 2 && restoredLine.isHigh)
        #expect(restored.configuration(UInt64.self, at: 0) == 32)
        var driver = SimulatedDriver(sharing: memory, size: 8, rings: 0x4000)
        #expect(try read(restored, driver: &driver, sectors: 1) == VirtioBlock.Status.ok)
        #expect(try memory.read(at: 0x20000, count: 512) == Array(disk.bytes[0..<512]))
    }

    /// Posts one frame of 60 bytes (behind the 12-byte header) on the transmit queue as
    /// `bringUp` laid it out (rings at 0x1000, 8 entries) and has the I/O thread serve it.
    func transmit(_ transport: VirtioMMIOTransport, _ net: VirtioNet, driver: inout SimulatedDriver) throws {
        try memory.write([UInt8](repeating: 0, count: 12) + [UInt8](repeating: 0x42, count: 60), at: 0x10000)
        try driver.post([(0x10000, 72, false)])
        transport.writeRegister(0x50, 1)
        net.serveReady([:], woken: true)
    }

    @Test func theLinkIsDownUntilABackendIsAttached() throws {
        let wakes = Counter()
        let net = VirtioNet(carriesHeader: false, mac: Self.mac) { wakes.increment() }
        let transport = transport(net)
        #expect(transport.offeredFeatures & VirtioNet.Feature.status != 0)
        #expect(transport.offeredFeatures & VirtioNet.Feature.offloads == 0)
        transport.bringUp(bothReady: true)
        #expect(transport.configuration(UInt8.self, at: 6) == 0, "VIRTIO_NET_S_LINK_UP clear")
        var driver = SimulatedDriver(sharing: memory, size: 8, rings: 0x1000)
        try transmit(transport, net, driver: &driver)
        #expect(net.statistics.transmitDropped == 1, "no backend: the frame goes nowhere")
        #expect(try driver.usedIndex() == 1, "and the guest has its buffer back")
        #expect(net.pollRequests().isEmpty)
        #expect(transport.register(0x60) & 2 == 0)

        let backend = MemoryNetwork()
        let woken = wakes.value
        try net.attach(backend)
        #expect(transport.register(0x60) & 2 == 2)
        #expect(transport.configuration(UInt8.self, at: 6) == 1)
        #expect(backend.offloads == VirtioFeature.version1, "the backend hears the features the driver accepted")
        #expect(wakes.value == woken + 1)
        #expect(net.pollRequests().map(\.events) == [Int16(POLLIN)])
        try transmit(transport, net, driver: &driver)
        #expect(backend.sent == [[UInt8](repeating: 0x42, count: 60)])
        #expect(throws: AttachError.attached(device: "network device")) { try net.attach(MemoryNetwork()) }
    }

    @Test func aBackendOfTheOtherHeaderKindIsRefused() throws {
        let tapDevice = VirtioNet(carriesHeader: true, mac: Self.mac) {}
        #expect(tapDevice.deviceFeatures & VirtioNet.Feature.offloads == VirtioNet.Feature.offloads)
        #expect(throws: AttachError.headerMismatch(deviceCarriesHeader: true)) { try tapDevice.attach(MemoryNetwork(carriesHeader: false)) }
        try tapDevice.attach(MemoryNetwork(carriesHeader: true))
        let streamDevice = VirtioNet(carriesHeader: false, mac: Self.mac) {}
        #expect(throws: AttachError.headerMismatch(deviceCarriesHeader: false)) { try streamDevice.attach(MemoryNetwork(carriesHeader: true)) }
        var configuration = [UInt8](repeating: 0xff, count: 8)
        configuration.withUnsafeMutableBytes { streamDevice.readConfiguration(offset: 0, into: $0) }
        #expect(configuration == Self.mac + [0, 0], "a refused backend leaves the link down")
    }

    /// An idle network device with its backend, snapshotted, restored without one and
    /// given the run's: the guest hears the link, and frames flow on the restored rings.
    @Test func anIdleNetworkDeviceIsRestoredAndGivenTheRunsBackend() throws {
        let net = VirtioNet(backend: MemoryNetwork(), mac: Self.mac) {}
        let original = transport(net)
        original.bringUp(bothReady: true)
        var driver = SimulatedDriver(sharing: memory, size: 8, rings: 0x1000)
        try transmit(original, net, driver: &driver)
        #expect(net.isIdle)
        var writer = StateWriter()
        original.saveState(into: &writer)

        let restoredNet = VirtioNet(carriesHeader: false, mac: Self.mac) {}
        let restoredLine = RecordingLine()
        let restored = transport(restoredNet, line: restoredLine)
        var reader = StateReader(writer.bytes)
        try restored.restoreState(from: &reader)
        #expect(reader.isAtEnd)
        #expect(restored.configuration(UInt8.self, at: 6) == 0)
        let backend = MemoryNetwork()
        try restoredNet.attach(backend)
        #expect(restored.register(0x60) & 2 == 2 && restoredLine.isHigh)
        #expect(restored.configuration(UInt8.self, at: 6) == 1)
        try transmit(restored, restoredNet, driver: &driver)
        #expect(backend.sent.count == 1)
        #expect(try driver.usedIndex() == 2)

        // A device built for a tap cannot take a state whose driver was offered no offloads.
        let tap = transport(VirtioNet(carriesHeader: true, mac: Self.mac) {}, line: RecordingLine())
        var again = StateReader(writer.bytes)
        #expect(throws: StateError.invalid(what: "net header kind (the device is built for frames with the virtio-net header)")) {
            try tap.restoreState(from: &again)
        }
    }

    /// A frame the guest queued whose notification the saved VM's I/O thread had not yet
    /// taken (an ioeventfd not yet read) is sent by the restored device.
    @Test func aRestoredNetworkDeviceLooksAtItsTransmitRing() throws {
        let net = VirtioNet(backend: MemoryNetwork(), mac: Self.mac) {}
        let original = transport(net)
        original.bringUp(bothReady: true)
        var driver = SimulatedDriver(sharing: memory, size: 8, rings: 0x1000)
        try memory.write([UInt8](repeating: 0, count: 72), at: 0x10000)
        try driver.post([(0x10000, 72, false)])
        var writer = StateWriter()
        original.saveState(into: &writer)

        let backend = MemoryNetwork()
        let restoredNet = VirtioNet(backend: backend, mac: Self.mac) {}
        var reader = StateReader(writer.bytes)
        try transport(restoredNet, line: RecordingLine()).restoreState(from: &reader)
        restoredNet.serveReady([:], woken: true)
        #expect(backend.sent.count == 1)
    }
}

extension VirtioMMIOTransport {
    func register(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { read(offset: offset, into: $0) }
        return UInt32(littleEndian: value)
    }

    func writeRegister(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { write(offset: offset, data: $0) }
    }

    /// The device's configuration field at `offset`, read as the driver reads it.
    func configuration<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value = T.zero
        withUnsafeMutableBytes(of: &value) { read(offset: 0x100 + UInt64(offset), into: $0) }
        return T(littleEndian: value)
    }
}
