@testable import Devices
@testable import Memory
import Synchronization
import Testing

/// A virtio driver simulated in guest memory: lays out a split ring and posts chains.
struct SimulatedDriver {
    let memory: GuestMemory
    let size: UInt16
    /// The descriptor table; the available ring 4 KiB above it, the used ring 8 KiB above.
    let descriptors: GuestAddress
    var available: GuestAddress { GuestAddress(descriptors.rawValue + 0x1000) }
    var used: GuestAddress { GuestAddress(descriptors.rawValue + 0x2000) }
    var nextDescriptor: UInt16 = 0
    var availableIndex: UInt16 = 0

    init(size: UInt16 = 8, memorySize: UInt64 = 1 << 20) throws {
        self.init(sharing: try GuestMemory(size: memorySize), size: size)
    }

    /// A driver of another queue in `memory`, its rings from `rings` on.
    init(sharing memory: GuestMemory, size: UInt16, rings: GuestAddress = 0x1000) {
        self.memory = memory
        self.size = size
        descriptors = rings
    }

    /// The same driver, its rings in `memory` (a copy of this one's, as a restored VM has).
    func copy(in memory: GuestMemory) -> SimulatedDriver {
        var copy = SimulatedDriver(sharing: memory, size: size, rings: descriptors)
        copy.nextDescriptor = nextDescriptor
        copy.availableIndex = availableIndex
        return copy
    }

    func queue(eventIndex: Bool = false) throws -> Virtqueue {
        try Virtqueue(memory: memory, size: size, descriptorTable: descriptors, availableRing: available,
                      usedRing: used, eventIndex: eventIndex)
    }

    func writeDescriptor(_ index: UInt16, address: UInt64, length: UInt32, flags: UInt16, next: UInt16, table: GuestAddress? = nil) throws {
        let entry = GuestAddress((table ?? descriptors).rawValue + UInt64(index) * 16)
        try memory.store(address, at: entry)
        try memory.store(length, at: GuestAddress(entry.rawValue + 8))
        try memory.store(flags, at: GuestAddress(entry.rawValue + 12))
        try memory.store(next, at: GuestAddress(entry.rawValue + 14))
    }

    /// Posts a chain of (address, length, writable) buffers; returns its head.
    @discardableResult
    mutating func post(_ buffers: [(UInt64, UInt32, Bool)]) throws -> UInt16 {
        let head = nextDescriptor
        for (offset, buffer) in buffers.enumerated() {
            let index = (head + UInt16(offset)) % size
            let last = offset == buffers.count - 1
            let flags: UInt16 = (buffer.2 ? 2 : 0) | (last ? 0 : 1)
            try writeDescriptor(index, address: buffer.0, length: buffer.1, flags: flags, next: (index + 1) % size)
        }
        nextDescriptor = (head + UInt16(buffers.count)) % size
        try publish(head)
        return head
    }

    mutating func publish(_ head: UInt16) throws {
        try memory.store(head, at: GuestAddress(available.rawValue + 4 + UInt64(availableIndex % size) * 2))
        availableIndex &+= 1
        try memory.store(availableIndex, at: GuestAddress(available.rawValue + 2))
    }

    func usedIndex() throws -> UInt16 { try memory.load(UInt16.self, at: GuestAddress(used.rawValue + 2)) }

    func usedElement(_ slot: UInt16) throws -> (id: UInt32, length: UInt32) {
        let entry = GuestAddress(used.rawValue + 4 + UInt64(slot % size) * 8)
        return (try memory.load(UInt32.self, at: entry), try memory.load(UInt32.self, at: GuestAddress(entry.rawValue + 4)))
    }
}

@Suite struct VirtqueueTests {
    @Test func walksChainsInOrderAndCompletesOutOfOrder() throws {
        var driver = try SimulatedDriver()
        let first = try driver.post([(0x10000, 16, false), (0x11000, 32, true)])
        let second = try driver.post([(0x12000, 8, false)])
        let queue = try driver.queue()
        let chainA = try #require(try queue.next())
        let chainB = try #require(try queue.next())
        #expect(try queue.next() == nil)
        #expect(chainA.head == first && chainB.head == second)
        #expect(chainA.buffers == [VirtqueueBuffer(address: 0x10000, length: 16, writable: false),
                                   VirtqueueBuffer(address: 0x11000, length: 32, writable: true)])
        queue.complete(chainB, written: 0)
        queue.complete(chainA, written: 32)
        #expect(try driver.usedIndex() == 2)
        #expect(try driver.usedElement(0).id == UInt32(second))
        #expect(try driver.usedElement(1) == (UInt32(first), 32))
    }

    @Test func followsIndirectTables() throws {
        var driver = try SimulatedDriver()
        let table: GuestAddress = 0x8000
        try driver.writeDescriptor(0, address: 0x20000, length: 4, flags: 1, next: 1, table: table)
        try driver.writeDescriptor(1, address: 0x21000, length: 64, flags: 2, next: 0, table: table)
        try driver.writeDescriptor(0, address: table.rawValue, length: 32, flags: 4, next: 0)
        try driver.publish(0)
        let chain = try #require(try driver.queue().next())
        #expect(chain.readable == [VirtqueueBuffer(address: 0x20000, length: 4, writable: false)])
        #expect(chain.writable == [VirtqueueBuffer(address: 0x21000, length: 64, writable: true)])
    }

    @Test func indicesWrapAround() throws {
        var driver = try SimulatedDriver(size: 4)
        let queue = try driver.queue()
        for round in 0..<70_000 {
            try driver.post([(0x10000 + UInt64(round % 4) * 0x100, 8, false)])
            let chain = try #require(try queue.next())
            queue.complete(chain, written: 0)
        }
        #expect(try driver.usedIndex() == UInt16(70_000 % 65_536))
        #expect(queue.nextAvailable == UInt16(70_000 % 65_536))
    }

    @Test func eventIndexSuppressesInterruptsUntilUsedEventPasses() throws {
        var driver = try SimulatedDriver()
        let queue = try driver.queue(eventIndex: true)
        let usedEvent = GuestAddress(driver.available.rawValue + 4 + UInt64(driver.size) * 2)
        try driver.memory.store(UInt16(2), at: usedEvent)
        for _ in 0..<4 { try driver.post([(0x10000, 8, false)]) }
        var interrupts: [Bool] = []
        for _ in 0..<4 {
            queue.complete(try #require(try queue.next()), written: 0)
            interrupts.append(queue.shouldInterrupt())
        }
        // First completion always signals; then only when used passes used_event (2 → index 3).
        #expect(interrupts == [true, false, true, false])
        // Once drained, avail_event tells the driver where we are.
        #expect(try queue.next() == nil)
        #expect(try driver.memory.load(UInt16.self, at: GuestAddress(driver.used.rawValue + 4 + UInt64(driver.size) * 8)) == 4)
    }

    /// The device asks for the next notification before it goes idle, whether or not it
    /// completed anything: a stale avail_event makes the driver skip its notification.
    @Test func drainingAQueuePublishesAvailEventBeforeGoingIdle() throws {
        var driver = try SimulatedDriver()
        let queue = try driver.queue(eventIndex: true)
        try driver.post([(0x10000, 8, false)])
        try driver.post([(0x11000, 8, false)])
        _ = try #require(try queue.next())
        _ = try #require(try queue.next())
        #expect(try queue.next() == nil)
        #expect(try driver.memory.load(UInt16.self, at: GuestAddress(driver.used.rawValue + 4 + UInt64(driver.size) * 8)) == 2)
    }

    @Test func noInterruptFlagIsHonouredWithoutEventIndex() throws {
        var driver = try SimulatedDriver()
        let queue = try driver.queue()
        try driver.post([(0x10000, 8, false)])
        try driver.memory.store(UInt16(1), at: driver.available)
        queue.complete(try #require(try queue.next()), written: 0)
        #expect(!queue.shouldInterrupt())
    }

    @Test func hostileLayoutsAreRefused() throws {
        func failure(_ setup: (inout SimulatedDriver) throws -> Void) throws -> VirtqueueError? {
            var driver = try SimulatedDriver()
            try setup(&driver)
            let queue = try driver.queue()
            do throws(VirtqueueError) {
                _ = try queue.next()
                return nil
            } catch {
                return error
            }
        }
        // A loop: 0 → 1 → 0.
        #expect(try failure { driver in
            try driver.writeDescriptor(0, address: 0x10000, length: 8, flags: 1, next: 1)
            try driver.writeDescriptor(1, address: 0x10000, length: 8, flags: 1, next: 0)
            try driver.publish(0)
        } == .chainTooLong(head: 0))
        #expect(try failure { driver in
            try driver.post([(0xffff_0000, 8, false)])
        } == .outsideMemory(what: "buffer", address: 0xffff_0000, length: 8))
        #expect(try failure { driver in
            try driver.post([(0xff000, 0x2000, true)])
        } == .outsideMemory(what: "buffer", address: 0xff000, length: 0x2000))
        #expect(try failure { driver in try driver.post([(0x10000, 0, false)]) } == .zeroLength(head: 0))
        #expect(try failure { driver in try driver.publish(9) } == .headOutOfRange(index: 9, size: 8))
        #expect(try failure { driver in
            try driver.writeDescriptor(0, address: 0x10000, length: 8, flags: 1, next: 200)
            try driver.publish(0)
        } == .nextOutOfRange(head: 0, next: 200))
        #expect(try failure { driver in try driver.post([(0x10000, 8, true), (0x11000, 8, false)]) } == .readableAfterWritable(head: 0))
        // Writing into the available index would publish a chain per answer, without end.
        #expect(try failure { driver in try driver.post([(0x1ff8, 16, true)]) }
            == .overlapsAvailableIndex(what: "writable buffer", address: 0x1ff8))
        #expect(try failure { driver in
            try driver.writeDescriptor(0, address: 0x8000, length: 24, flags: 4, next: 0)
            try driver.publish(0)
        } == .badIndirectTable(head: 0, length: 24))
        #expect(try failure { driver in
            try driver.writeDescriptor(0, address: 0x8000, length: 16, flags: 4, next: 0, table: 0x8000)
            try driver.writeDescriptor(0, address: 0x8000, length: 16, flags: 4, next: 0)
            try driver.publish(0)
        } == .nestedIndirect(head: 0))
        #expect(try failure { driver in
            try driver.memory.store(UInt16(100), at: GuestAddress(driver.available.rawValue + 2))
        } == .availableIndexJump(previous: 0, now: 100, size: 8))
        // A chain as long as the queue is fine; the table cannot hold a longer one.
        #expect(try failure { driver in try driver.post(Array(repeating: (0x10000, 8, false), count: 8)) } == nil)
    }

    @Test func aUsedRingOverTheAvailableIndexIsRefusedAtSetup() throws {
        let memory = try GuestMemory(size: 1 << 20)
        #expect(throws: VirtqueueError.overlapsAvailableIndex(what: "used ring", address: 0x1f00)) {
            try Virtqueue(memory: memory, size: 64, descriptorTable: 0x4000, availableRing: 0x2000, usedRing: 0x1f00, eventIndex: false)
        }
        _ = try Virtqueue(memory: memory, size: 8, descriptorTable: 0x4000, availableRing: 0x2000, usedRing: 0x2004, eventIndex: false)
    }

    @Test func ringsOutsideMemoryAreRefusedAtSetup() throws {
        let memory = try GuestMemory(size: 1 << 20)
        #expect(throws: VirtqueueError.self) {
            try Virtqueue(memory: memory, size: 256, descriptorTable: 0xff800, availableRing: 0x2000, usedRing: 0x3000, eventIndex: false)
        }
    }
}

final class LogRecorder: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}

final class RecordingInterrupt: VirtioInterrupt {
    let events = Mutex<[String]>([])
    func usedBuffers() { events.withLock { $0.append("used") } }
    func configurationChanged() { events.withLock { $0.append("config") } }
    func deviceNeedsReset(_ error: VirtqueueError) { events.withLock { $0.append("reset: \(error)") } }
    var recorded: [String] { events.withLock { $0 } }
}

@Suite struct VirtioConsoleTests {
    @Test func transmitsAndReceives() throws {
        var tx = try SimulatedDriver()
        let output = RecordingOutput()
        let console = VirtioConsole { output.write($0) }
        // Both queues in one memory: rx rings at 0x4000.., tx rings at the driver's defaults.
        let rx = try Virtqueue(memory: tx.memory, size: 8, descriptorTable: 0x4000, availableRing: 0x5000, usedRing: 0x6000, eventIndex: false)
        let interrupt = RecordingInterrupt()
        console.activate(queues: [rx, try tx.queue()], features: 0, interrupt: interrupt)
        try tx.memory.write(Array("hello".utf8), at: 0x10000)
        try tx.post([(0x10000, 5, false)])
        console.queueNotified(1)
        #expect(output.written == Array("hello".utf8))
        #expect(interrupt.recorded == ["used"])

        #expect(console.receive(Array("typed".utf8)) == 5)
        // No receive buffer yet: input waits.
        #expect(console.inputSpace == VirtioConsole.inputCapacity - 5)
        try tx.memory.store(UInt64(0x30000), at: 0x4000)
        try tx.memory.store(UInt32(3), at: 0x4008)
        try tx.memory.store(UInt16(2), at: 0x400c)
        try tx.memory.store(UInt16(0), at: 0x5004)
        try tx.memory.store(UInt16(1), at: 0x5002)
        console.queueNotified(0)
        #expect(try tx.memory.read(at: 0x30000, count: 3) == Array("typ".utf8))
        #expect(try tx.memory.load(UInt32.self, at: 0x6008) == 3)
        #expect(console.inputSpace == VirtioConsole.inputCapacity - 2)
    }

    @Test func aWritableTransmitBufferBreaksTheQueueOnce() throws {
        var tx = try SimulatedDriver()
        let console = VirtioConsole { _ in }
        let interrupt = RecordingInterrupt()
        let rx = try Virtqueue(memory: tx.memory, size: 8, descriptorTable: 0x4000, availableRing: 0x5000, usedRing: 0x6000, eventIndex: false)
        console.activate(queues: [rx, try tx.queue()], features: 0, interrupt: interrupt)
        try tx.post([(0x10000, 5, true)])
        console.queueNotified(1)
        try tx.post([(0x10000, 5, false)])
        console.queueNotified(1)
        #expect(interrupt.recorded == ["reset: descriptor chain from 0 should hold only device-readable buffers"])
    }

    @Test func configurationSpaceHoldsTheSize() {
        let console = VirtioConsole { _ in }
        console.setSize(columns: 132, rows: 43)
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.withUnsafeMutableBytes { console.readConfiguration(offset: 0, into: $0) }
        #expect(bytes == [132, 0, 43, 0, 1, 0, 0, 0])
    }
}

@Suite struct VirtioMMIOTransportTests {
    let memory: GuestMemory
    let line = RecordingLine()
    let logged = LogRecorder()
    let transport: VirtioMMIOTransport
    let console: VirtioConsole

    init() throws {
        memory = try GuestMemory(size: 1 << 20)
        console = VirtioConsole { _ in }
        let logged = self.logged
        transport = VirtioMMIOTransport(device: console, memory: memory, interrupt: line) { logged.append($0) }
    }

    func read(_ offset: UInt64) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { transport.read(offset: offset, into: $0) }
        return value
    }

    func write(_ offset: UInt64, _ value: UInt32) {
        withUnsafeBytes(of: value) { transport.write(offset: offset, data: $0) }
    }

    func setUpQueues(size: UInt32 = 8) {
        for (queue, base) in [(UInt32(0), UInt32(0x4000)), (1, 0x1000)] {
            write(0x30, queue)
            write(0x38, size)
            write(0x80, base)
            write(0x90, base + 0x1000)
            write(0xa0, base + 0x2000)
            write(0x44, 1)
        }
    }

    func negotiate(_ features: UInt64) {
        write(0x70, 1)
        write(0x70, 3)
        write(0x24, 0)
        write(0x20, UInt32(truncatingIfNeeded: features))
        write(0x24, 1)
        write(0x20, UInt32(truncatingIfNeeded: features >> 32))
        write(0x70, 11)
    }

    @Test func identifiesAsAVirtio1Console() {
        #expect(read(0x000) == 0x7472_6976)
        #expect(read(0x004) == 2)
        #expect(read(0x008) == 3)
        write(0x014, 0)
        #expect(read(0x010) & 1 == 1)
        write(0x014, 1)
        #expect(read(0x010) & 1 == 1)
        write(0x030, 1)
        #expect(read(0x034) == 256)
        write(0x030, 7)
        #expect(read(0x034) == 0)
    }

    @Test func featureNegotiationRefusesWhatWasNotOffered() {
        negotiate(1 << 33 | VirtioFeature.version1)
        #expect(read(0x070) & 8 == 0)
        write(0x70, 0)
        negotiate(0)
        #expect(read(0x070) & 8 == 0, "a driver without VERSION_1 is refused")
        write(0x70, 0)
        negotiate(VirtioFeature.version1 | VirtioConsole.featureSize)
        #expect(read(0x070) == 11)
    }

    @Test func driverOKActivatesAndResetClearsEverything() throws {
        negotiate(VirtioFeature.version1)
        setUpQueues()
        write(0x70, 15)
        #expect(read(0x70) == 15)
        // Queue layout is fixed once running.
        write(0x30, 0)
        write(0x38, 4)
        // The device works: input reaches the guest and raises the used-buffer interrupt.
        try memory.store(UInt64(0x30000), at: 0x4000)
        try memory.store(UInt32(16), at: 0x4008)
        try memory.store(UInt16(2), at: 0x400c)
        try memory.store(UInt16(1), at: 0x5002)
        console.receive([0x61])
        #expect(read(0x60) == 1)
        #expect(line.isHigh)
        write(0x64, 1)
        #expect(read(0x60) == 0)
        #expect(!line.isHigh)
        write(0x70, 0)
        #expect(read(0x70) == 0)
        #expect(read(0x44) == 0)
    }

    @Test func ringsOutsideMemoryFailActivationWithNeedsReset() {
        negotiate(VirtioFeature.version1)
        setUpQueues()
        write(0x30, 1)
        write(0x80, 0xffff_0000)
        write(0x70, 15)
        #expect(read(0x70) & 4 == 0)
        #expect(read(0x70) & 0x40 == 0x40)
        #expect(read(0x60) & 2 == 2)
        #expect(logged.lines.count == 1)
    }

    @Test func configurationSpaceIsReadThroughTheTransport() {
        console.setSize(columns: 100, rows: 30)
        var columns: UInt16 = 0
        withUnsafeMutableBytes(of: &columns) { transport.read(offset: 0x100, into: $0) }
        #expect(columns == 100)
    }

    /// Regression (found by the virtio-mmio fuzz target): an activated console and its
    /// transport referred to each other strongly and were never freed.
    @Test func anActivatedDeviceAndItsTransportAreFreed() throws {
        weak var weakTransport: VirtioMMIOTransport?
        weak var weakConsole: VirtioConsole?
        try {
            let console = VirtioConsole { _ in }
            let transport = VirtioMMIOTransport(device: console, memory: memory, interrupt: line) { _ in }
            weakTransport = transport
            weakConsole = console
            for (offset, value) in [(0x70, 1), (0x70, 3), (0x24, 1), (0x20, 1), (0x70, 11), (0x30, 0), (0x80, 0x4000),
                                    (0x90, 0x5000), (0xa0, 0x6000), (0x44, 1), (0x30, 1), (0x80, 0x1000), (0x90, 0x2000),
                                    (0xa0, 0x3000), (0x44, 1), (0x70, 15)] as [(UInt64, UInt32)] {
                withUnsafeBytes(of: value) { transport.write(offset: offset, data: $0) }
            }
            var status: UInt32 = 0
            withUnsafeMutableBytes(of: &status) { transport.read(offset: 0x70, into: $0) }
            #expect(status == 15)
            try #require(weakTransport != nil)
        }()
        #expect(weakTransport == nil)
        #expect(weakConsole == nil)
    }
}
