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
