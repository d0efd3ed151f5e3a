@testable import Devices
import Glibc
@testable import Memory
@testable import Runtime
import Synchronization
import Testing

/// A disk in memory, with a count of what reached it.
final class MemoryDisk: BlockBackend, @unchecked Sendable {
    var bytes: [UInt8]
    let isReadOnly: Bool
    var flushes = 0
    var size: UInt64 { UInt64(bytes.count) }

    init(sectors: Int, readOnly: Bool = false) {
        bytes = (0..<(sectors * 512)).map { UInt8(truncatingIfNeeded: $0 / 512 + $0) }
        isReadOnly = readOnly
    }

    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool {
        var position = Int(offset)
        for buffer in buffers {
            buffer.copyBytes(from: bytes[position..<(position + buffer.count)])
            position += buffer.count
        }
        return true
    }

    func write(_ buffers: [UnsafeRawBufferPointer], at offset: UInt64) -> Bool {
        var position = Int(offset)
        for buffer in buffers {
            bytes.replaceSubrange(position..<(position + buffer.count), with: buffer)
            position += buffer.count
        }
        return true
    }

    func flush() -> Bool {
        flushes += 1
        return true
    }
}

/// virtio-blk against a simulated driver: requests laid out in guest memory as Linux
/// lays them out, and as a hostile guest might.
@Suite struct VirtioBlockTests {
    var driver: SimulatedDriver
    let disk = MemoryDisk(sectors: 64)
    let block: VirtioBlock
    let interrupt = RecordingInterrupt()

    static let header: UInt64 = 0x10000
    static let data: UInt64 = 0x20000
    static let status: UInt64 = 0x30000

    /// `empty`: a slot without a backend.
    init(readOnly: Bool = false, empty: Bool = false) throws {
        driver = try SimulatedDriver(size: 16)
        block = empty ? VirtioBlock(identifier: "microvm-disk0")
            : VirtioBlock(backend: readOnly ? MemoryDisk(sectors: 64, readOnly: true) : disk, identifier: "microvm-disk0")
        block.activate(queues: [try driver.queue()], features: 0, interrupt: interrupt)
    }

    func writeHeader(type: UInt32, sector: UInt64, at address: UInt64 = header) throws {
        try driver.memory.store(type, at: GuestAddress(address))
        try driver.memory.store(UInt32(0), at: GuestAddress(address + 4))
        try driver.memory.store(sector, at: GuestAddress(address + 8))
    }

    /// Posts `buffers`, notifies, and returns the status byte and the used length.
    mutating func submit(_ buffers: [(UInt64, UInt32, Bool)]) throws -> (status: UInt8, written: UInt32) {
        try driver.memory.store(UInt8(0xee), at: GuestAddress(Self.status))
        try driver.post(buffers)
        block.queueNotified(0)
        let used = try driver.usedElement(try driver.usedIndex() &- 1)
        return (try driver.memory.load(UInt8.self, at: GuestAddress(Self.status)), used.length)
    }

    @Test mutating func readsSectorsIntoTheGuestsBuffers() throws {
        try writeHeader(type: VirtioBlock.RequestType.read, sector: 3)
        let result = try submit([(Self.header, 16, false), (Self.data, 1024, true), (Self.status, 1, true)])
        #expect(result.status == VirtioBlock.Status.ok)
        #expect(result.written == 1025)
        #expect(try driver.memory.read(at: GuestAddress(Self.data), count: 1024) == Array(disk.bytes[1536..<2560]))
        #expect(interrupt.recorded == ["used"])
    }

    @Test mutating func writesTheGuestsBuffersToTheDisk() throws {
        try writeHeader(type: VirtioBlock.RequestType.write, sector: 1)
        try driver.memory.write([UInt8](repeating: 0xab, count: 512), at: GuestAddress(Self.data))
        let result = try submit([(Self.header, 16, false), (Self.data, 512, false), (Self.status, 1, true)])
        #expect(result.status == VirtioBlock.Status.ok)
        #expect(result.written == 1)
        #expect(Array(disk.bytes[512..<1024]) == [UInt8](repeating: 0xab, count: 512))
    }

    @Test mutating func flushReachesTheBackendAndGetIDAnswersTheSerial() throws {
        try writeHeader(type: VirtioBlock.RequestType.flush, sector: 0)
        #expect(try submit([(Self.header, 16, false), (Self.status, 1, true)]).status == VirtioBlock.Status.ok)
        #expect(disk.flushes == 1)
        try writeHeader(type: VirtioBlock.RequestType.getID, sector: 0)
        let result = try submit([(Self.header, 16, false), (Self.data, 20, true), (Self.status, 1, true)])
        #expect(result.status == VirtioBlock.Status.ok)
        #expect(try driver.memory.read(at: GuestAddress(Self.data), count: 20) == Array("microvm-disk0".utf8) + [UInt8](repeating: 0, count: 7))
    }

    @Test mutating func unknownRequestsAreUnsupported() throws {
        try writeHeader(type: 11, sector: 0) // DISCARD, not offered
        #expect(try submit([(Self.header, 16, false), (Self.status, 1, true)]).status == VirtioBlock.Status.unsupported)
    }

    @Test mutating func sectorsOutsideTheDiskAreIOErrors() throws {
        for (sector, length) in [(UInt64(64), UInt32(512)), (63, 1024), (UInt64.max / 256, 512), (0, 100)] {
            try writeHeader(type: VirtioBlock.RequestType.read, sector: sector)
            let result = try submit([(Self.header, 16, false), (Self.data, length, true), (Self.status, 1, true)])
            #expect(result.status == VirtioBlock.Status.ioError, "sector \(sector), \(length) bytes")
        }
    }

    @Test func aReadOnlyDiskRefusesWritesAndSaysSo() throws {
        var test = try VirtioBlockTests(readOnly: true)
        #expect(test.block.deviceFeatures & VirtioBlock.Feature.readOnly != 0)
        try test.writeHeader(type: VirtioBlock.RequestType.write, sector: 0)
        #expect(try test.submit([(Self.header, 16, false), (Self.data, 512, false), (Self.status, 1, true)]).status
            == VirtioBlock.Status.ioError)
        try test.writeHeader(type: VirtioBlock.RequestType.read, sector: 0)
        #expect(try test.submit([(Self.header, 16, false), (Self.data, 512, true), (Self.status, 1, true)]).status
            == VirtioBlock.Status.ok)
    }

    /// Header and data in one buffer, data over many buffers, data and status in one buffer.
    @Test mutating func oddChainShapesAreServed() throws {
        try writeHeader(type: VirtioBlock.RequestType.write, sector: 2)
        try driver.memory.write([UInt8](repeating: 0x5a, count: 512), at: GuestAddress(Self.header + 16))
        #expect(try submit([(Self.header, 16 + 512, false), (Self.status, 1, true)]).status == VirtioBlock.Status.ok)
        #expect(Array(disk.bytes[1024..<1536]) == [UInt8](repeating: 0x5a, count: 512))

        try writeHeader(type: VirtioBlock.RequestType.read, sector: 4)
        let pieces = (0..<8).map { (Self.data + UInt64($0) * 0x1000, UInt32(128), true) }
        #expect(try submit([(Self.header, 16, false)] + pieces + [(Self.status, 1, true)]).status == VirtioBlock.Status.ok)
        for (index, piece) in pieces.enumerated() {
            #expect(try driver.memory.read(at: GuestAddress(piece.0), count: 128) == Array(disk.bytes[(2048 + index * 128)..<(2048 + index * 128 + 128)]))
        }

        try writeHeader(type: VirtioBlock.RequestType.read, sector: 5)
        try driver.post([(Self.header, 16, false), (Self.data, 513, true)])
        block.queueNotified(0)
        #expect(try driver.memory.load(UInt8.self, at: GuestAddress(Self.data + 512)) == VirtioBlock.Status.ok)
        #expect(try driver.memory.read(at: GuestAddress(Self.data), count: 512) == Array(disk.bytes[2560..<3072]))
    }

    @Test mutating func dataInTheWrongDirectionIsAnIOError() throws {
        try writeHeader(type: VirtioBlock.RequestType.read, sector: 0)
        #expect(try submit([(Self.header, 16, false), (Self.data, 512, false), (Self.status, 1, true)]).status
            == VirtioBlock.Status.ioError)
        try writeHeader(type: VirtioBlock.RequestType.write, sector: 0)
        #expect(try submit([(Self.header, 16, false), (Self.data, 512, true), (Self.status, 1, true)]).status
            == VirtioBlock.Status.ioError)
    }

    /// A request header in a device-writable buffer: there is no header to read.
    @Test mutating func aHeaderInAWritableBufferIsAnIOError() throws {
        try writeHeader(type: VirtioBlock.RequestType.read, sector: 0)
        #expect(try submit([(Self.header, 16, true), (Self.status, 1, true)]).status == VirtioBlock.Status.ioError)
    }

    /// No status byte: nothing can be answered, so the queue is given up (once).
    @Test mutating func aMissingStatusByteBreaksTheQueue() throws {
        try writeHeader(type: VirtioBlock.RequestType.write, sector: 0)
        try driver.post([(Self.header, 16, false), (Self.data, 512, false)])
        block.queueNotified(0)
        try driver.post([(Self.header, 16, false), (Self.status, 1, true)])
        block.queueNotified(0)
        #expect(interrupt.recorded == ["reset: descriptor chain from 0: the request has no device-writable status byte at its end"])
        #expect(try driver.usedIndex() == 0)
    }

    @Test func anEmptySlotAnswersIOErrorsAndItsSerial() throws {
        var test = try VirtioBlockTests(empty: true)
        #expect(test.block.capacity == 0)
        #expect(test.block.deviceFeatures & VirtioBlock.Feature.readOnly == 0, "an empty slot offers a writable disk")
        let requests: [(UInt32, [(UInt64, UInt32, Bool)])] = [
            (VirtioBlock.RequestType.read, [(Self.header, 16, false), (Self.data, 512, true), (Self.status, 1, true)]),
            (VirtioBlock.RequestType.write, [(Self.header, 16, false), (Self.data, 512, false), (Self.status, 1, true)]),
            (VirtioBlock.RequestType.flush, [(Self.header, 16, false), (Self.status, 1, true)]),
        ]
        for (type, buffers) in requests {
            try test.writeHeader(type: type, sector: 0)
            #expect(try test.submit(buffers) == (VirtioBlock.Status.ioError, 1), "request type \(type)")
        }
        try test.writeHeader(type: VirtioBlock.RequestType.getID, sector: 0)
        let result = try test.submit([(Self.header, 16, false), (Self.data, 20, true), (Self.status, 1, true)])
        #expect(result == (VirtioBlock.Status.ok, 21))
        #expect(try test.driver.memory.read(at: GuestAddress(Self.data), count: 13) == Array("microvm-disk0".utf8))
        #expect(!test.interrupt.recorded.contains("config"))
    }

    /// The driver read the features of an empty slot, which offers a writable disk: a
    /// read-only backend given later answers writes with IOERR, whatever the guest tries.
    @Test func aReadOnlyBackendAttachedLaterStillRefusesWrites() throws {
        var test = try VirtioBlockTests(empty: true)
        let disk = MemoryDisk(sectors: 8, readOnly: true)
        try test.block.attach(disk)
        #expect(test.interrupt.recorded == ["config"])
        #expect(test.block.capacity == 8)
        #expect(test.block.deviceFeatures & VirtioBlock.Feature.readOnly == 0)
        let before = disk.bytes
        try test.writeHeader(type: VirtioBlock.RequestType.write, sector: 0)
        #expect(try test.submit([(Self.header, 16, false), (Self.data, 512, false), (Self.status, 1, true)]).status
            == VirtioBlock.Status.ioError)
        #expect(disk.bytes == before)
        try test.writeHeader(type: VirtioBlock.RequestType.read, sector: 7)
        #expect(try test.submit([(Self.header, 16, false), (Self.data, 512, true), (Self.status, 1, true)]).status
            == VirtioBlock.Status.ok)
        #expect(try test.driver.memory.read(at: GuestAddress(Self.data), count: 512) == Array(disk.bytes[3584...]))
    }

    @Test func configurationSpaceDescribesTheDisk() {
        var bytes = [UInt8](repeating: 0, count: 24)
        bytes.withUnsafeMutableBytes { block.readConfiguration(offset: 0, into: $0) }
        #expect(bytes.littleEndian(UInt64.self, at: 0) == 64)
        #expect(bytes.littleEndian(UInt32.self, at: 12) == VirtioBlock.segmentMaximum)
        #expect(bytes.littleEndian(UInt32.self, at: 20) == 512)
    }
}

@Suite struct DiskFileTests {
    static func temporaryFile(_ bytes: [UInt8]) -> String {
        var template = Array("/tmp/microvm-disk-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func readsAndWritesScatteredBuffersInPlace() throws {
        let path = Self.temporaryFile((0..<4096).map { UInt8(truncatingIfNeeded: $0) })
        defer { unlink(path) }
        let disk = try DiskFile(path: path, readOnly: false)
        #expect(disk.size == 4096)
        var first = [UInt8](repeating: 0, count: 100)
        var second = [UInt8](repeating: 0, count: 412)
        let ok = first.withUnsafeMutableBytes { a in second.withUnsafeMutableBytes { b in disk.read(into: [a, b], at: 512) } }
        #expect(ok)
        #expect(first + second == (512..<1024).map { UInt8(truncatingIfNeeded: $0) })
        let written = [UInt8](repeating: 7, count: 512)
        #expect(written.withUnsafeBytes { disk.write([$0], at: 0) })
        #expect(disk.flush())
        var back = [UInt8](repeating: 0, count: 512)
        #expect(back.withUnsafeMutableBytes { disk.read(into: [$0], at: 0) })
        #expect(back == written)
        var past = [UInt8](repeating: 0, count: 512)
        #expect(!past.withUnsafeMutableBytes { disk.read(into: [$0], at: 4096) }, "end of file is an error, not zeros")
    }

    @Test func badPathsAreRefusedWithTheReason() throws {
        #expect(throws: DiskFile.Error.cannotOpen(path: "/nonexistent/disk", reason: "No such file or directory")) {
            try DiskFile(path: "/nonexistent/disk", readOnly: false)
        }
        #expect(throws: DiskFile.Error.cannotOpen(path: "/tmp", reason: "it is a directory, not a regular file or a block device")) {
            try DiskFile(path: "/tmp", readOnly: false)
        }
    }

    /// A FIFO nobody writes: opening it for reading would wait for a writer for ever.
    @Test func aFIFOIsRefusedWithoutWaiting() throws {
        let path = "/tmp/microvm-disk-fifo-\(getpid())"
        unlink(path)
        #expect(mkfifo(path, 0o600) == 0)
        defer { unlink(path) }
        #expect(throws: DiskFile.Error.cannotOpen(path: path, reason: "it is a FIFO, not a regular file or a block device")) {
            try DiskFile(path: path, readOnly: true)
        }
    }
}

@Suite struct ExitStatusTests {
    @Test func aFourByteWriteReportsTheStatus() {
        let reported = Mutex<[Int32]>([])
        let register = ExitStatusRegister { status in reported.withLock { $0.append(status) } }
        withUnsafeBytes(of: UInt32(7).littleEndian) { register.write(offset: 0, data: $0) }
        withUnsafeBytes(of: UInt32(300).littleEndian) { register.write(offset: 0, data: $0) }
        withUnsafeBytes(of: UInt16(5).littleEndian) { register.write(offset: 0, data: $0) }
        withUnsafeBytes(of: UInt32(9).littleEndian) { register.write(offset: 4, data: $0) }
        #expect(reported.withLock { $0 } == [7])
        #expect(VMExit.commandExited(137).status == 137)
        #expect(VMExit.commandExited(0).message == nil)
    }

    @Test func argumentsAreEncodedWhole() {
        #expect(GuestCommand.base64(Array("".utf8)) == "")
        #expect(GuestCommand.base64(Array("f".utf8)) == "Zg==")
        #expect(GuestCommand.base64(Array("fo".utf8)) == "Zm8=")
        #expect(GuestCommand.base64(Array("foo".utf8)) == "Zm9v")
        #expect(GuestCommand.base64(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(GuestCommand.kernelParameter(["sh", "-c", "echo \"$HOME\" 'x y'", ""])
            == "microvm.argv=c2gu,LWMu,ZWNobyAiJEhPTUUiICd4IHknLg==,Lg==")
    }
}
