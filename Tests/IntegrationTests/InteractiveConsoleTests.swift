import CLinux
import Foundation
import Testing

/// A pseudo-terminal pair: the test types on the master; microvm sees the slave as its terminal.
final class PseudoTerminal {
    let master: Int32
    let slavePath: String
    /// The slave, held open by the test while what it started runs and after it ends, so
    /// that the master can still read what was written last.
    private var slave: FileHandle?

    init() throws {
        // posix_openpt and friends are hidden from Swift's Glibc; these are the ioctls behind them.
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, clinux_ioctl_ptr(master, CLINUX_TIOCSPTLCK, &unlock) == 0, clinux_ioctl_ptr(master, CLINUX_TIOCGPTN, &number) == 0 else {
            throw POSIXError(.ENODEV)
        }
        slavePath = "/dev/pts/\(number)"
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(master) }

    /// Starts `executable` with the slave as its standard input, output and error.
    func start(_ executable: URL, _ arguments: [String]) throws -> Process {
        let slave = try FileHandle(forUpdating: URL(fileURLWithPath: slavePath))
        self.slave = slave
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = slave
        process.standardOutput = slave
        process.standardError = slave
        try process.run()
        return process
    }

    func type(_ text: String) {
        _ = text.withCString { write(master, $0, strlen($0)) }
    }

    func type(bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Reads until `marker` appears after `from` (an offset into everything read so far).
    func wait(for marker: String, in transcript: inout String, after from: String.Index? = nil, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            let start = from ?? transcript.startIndex
            if transcript[start...].contains(marker) { return true }
            let count = read(master, &buffer, buffer.count)
            if count > 0 {
                transcript += String(decoding: buffer[0..<count], as: UTF8.self)
            } else {
                usleep(20_000)
            }
        }
        return transcript[(from ?? transcript.startIndex)...].contains(marker)
    }

    /// The slave's terminal settings, to compare before and after a run.
    func settings() -> [UInt8] {
        let fd = open(slavePath, O_RDWR | O_NOCTTY)
        defer { close(fd) }
        var attributes = termios()
        tcgetattr(fd, &attributes)
        return withUnsafeBytes(of: attributes) { Array($0) }
    }
}

@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveLinux, GuestImages.missingLinux))
struct InteractiveConsoleTests {
    @Test func typeIntoTheGuestShellThenQuitWithCtrlAX() throws {
        let terminal = try PseudoTerminal()
        let before = terminal.settings()
        let process = try terminal.start(MicroVMProcess.executable,
                                         ["run", "--quiet", "--kernel", GuestImages.linuxBzImage, "--initrd", GuestImages.initrd])
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        var transcript = ""
        // Generous: the guest comes from a template, which the first run of the machine
        // boots and makes while other suites boot guests, and on an emulating host each
        // one's kernel work waits for a core.
        #expect(terminal.wait(for: "# ", in: &transcript, timeout: 600), "transcript: \(transcript.suffix(2000))")
        #expect(terminal.settings() != before, "microvm should have put the terminal in raw mode")

        let mark = transcript.endIndex
        terminal.type("echo $((6 * 7))-answer\r")
        #expect(terminal.wait(for: "42-answer", in: &transcript, after: mark, timeout: 240), "transcript: \(transcript.suffix(2000))")

        terminal.type(bytes: [0x01, UInt8(ascii: "x")])
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        #expect(terminal.settings() == before, "the terminal settings were not restored")
    }
}
