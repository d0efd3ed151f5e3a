import Glibc
import Memory
@testable import Runtime
import Synchronization
import Testing

/// The console log's limit, and the rules every output file of a run follows.
struct ConsoleLogTests {
    static func scratch(_ name: String) -> String {
        let path = "/tmp/microvm-console-log-\(getpid())-\(name)"
        unlink(path)
        return path
    }

    static func contents(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { return bytes }
            bytes += buffer[..<count]
        }
    }

    static func create(_ path: String, _ bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Outside a closure: withUnsafeBytes with a typed-throws body crashes this compiler.
    static func write(_ log: ConsoleLog, _ bytes: some Collection<UInt8>) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes)
        try log.write(UnsafeRawBufferPointer(buffer))
    }

    /// A log as a running VM has it: begun, so emptied.
    static func log(_ path: String, limit: UInt64) throws -> ConsoleLog {
        let log = ConsoleLog(try OutputFile(path, role: "the console log", others: []), limit: limit)
        try log.begin()
        return log
    }

    @Test func underItsLimitTheLogIsTheOutput() throws {
        let path = Self.scratch("under")
        defer { unlink(path) }
        Self.create(path, Array("an earlier run's log, longer than this one's\n".utf8))
        let log = try Self.log(path, limit: 4096)
        for line in ["one\n", "two\n", "three\n"] {
            try Self.write(log, line.utf8)
        }
        #expect(Self.contents(path) == Array("one\ntwo\nthree\n".utf8))
    }

    /// Byte by byte, as the serial port prints, and in one write larger than the limit.
    @Test(arguments: [1, 20_000])
    func pastItsLimitTheLogKeepsTheNewestOutputAfterALineCountingTheRest(chunk: Int) throws {
        let path = Self.scratch("past-\(chunk)")
        defer { unlink(path) }
        let limit: UInt64 = 4096
        let log = try Self.log(path, limit: limit)
        let output = Array((0..<2000).map { "line \($0)\n" }.joined().utf8)
        for start in stride(from: 0, to: output.count, by: chunk) {
            try Self.write(log, output[start..<min(start + chunk, output.count)])
        }
        let logged = Self.contents(path)
        #expect(logged.count <= Int(limit))
        let newline = try #require(logged.firstIndex(of: 0x0a))
        let kept = Array(logged[(newline + 1)...])
        #expect(kept.count >= Int(limit) / 2 - 256 - 256, "about half the limit is kept")
        #expect(output.suffix(kept.count).elementsEqual(kept), "the newest output, whole")
        let marker = String(decoding: logged[...newline], as: UTF8.self)
        #expect(marker == "[microvm: the console log keeps at most 4096 bytes; \(output.count - kept.count) bytes of older output were dropped]\n")
    }

    @Test func aLimitOutsideTheBoundsIsRefusedBeforeAnythingIsOpened() throws {
        let path = Self.scratch("bounds")
        defer { unlink(path) }
        var configuration = VMConfiguration(kernel: "/nonexistent/vmlinux", consoleLog: path, consoleLogLimit: 100)
        #expect(throws: ConfigurationError.consoleLogLimit(100)) { try MicroVM(configuration) }
        configuration.consoleLogLimit = 2 << 40
        #expect(throws: ConfigurationError.consoleLogLimit(2 << 40)) { try MicroVM(configuration) }
        #expect(access(path, F_OK) != 0)
    }

    /// A log that cannot be written says so once, then takes nothing more.
    @Test func aFullDeviceFailsTheFirstWriteOnly() throws {
        let failures = Mutex<[OutputFile.Error]>([])
        let output = ConsoleOutput(fd: nil, logFailed: { error in failures.withLock { $0.append(error) } })
        output.startLog(try Self.log("/dev/full", limit: 4096))
        for _ in 0..<3 { Array("output\n".utf8).withUnsafeBytes { output.write($0) } }
        #expect(failures.withLock { $0 } == [.cannotWrite(role: "the console log", path: "/dev/full", reason: "No space left on device")])
    }

    /// Whatever the path (a symbolic or a hard link), an output is never one of the run's inputs.
    @Test(arguments: ["same", "symbolic", "hard"])
    func anOutputIsRefusedOverAnInputAndLeavesItWhole(naming: String) throws {
        let disk = Self.scratch("input-\(naming)")
        let other = Self.scratch("disk-\(naming)")
        defer { unlink(disk); unlink(other) }
        let bytes = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        Self.create(disk, bytes)
        let path: String
        switch naming {
        case "symbolic": symlink(disk, other); path = other
        case "hard": Glibc.link(disk, other); path = other
        default: path = disk
        }
        #expect(throws: OutputFile.Error.cannotOpen(role: "the console log", path: path, reason: "it is the disk \(disk) of this run")) {
            try OutputFile(path, role: "the console log", others: [("the disk \(disk)", try #require(InputFile.Identity.of(disk)))])
        }
        #expect(Self.contents(disk) == bytes)
    }

    /// Opening an output for writing would wait for a reader of a FIFO for ever.
    @Test func aFIFOOrADirectoryIsRefusedWithoutWaiting() throws {
        let fifo = Self.scratch("fifo")
        defer { unlink(fifo) }
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: OutputFile.Error.cannotOpen(role: "the profile", path: fifo, reason: "it is a FIFO, not a regular file or a character device")) {
            try OutputFile(fifo, role: "the profile", others: [])
        }
        #expect(throws: OutputFile.Error.cannotOpen(role: "the profile", path: "/tmp", reason: "it is a directory, not a regular file or a character device")) {
            try OutputFile("/tmp", role: "the profile", others: [])
        }
    }
}
