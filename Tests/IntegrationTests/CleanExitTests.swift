import Foundation
import Testing

/// Whatever ends a run on a terminal, the terminal is left exactly as it was, the
/// process exits with the documented status, and the console socket file is gone.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct CleanExitTests {
    enum Ending: CustomStringConvertible, Sendable {
        case signal(Int32)
        case guestWord(String, status: Int32)
        case badKernel
        /// A system call off a vCPU thread's seccomp list while the terminal is raw.
        case blockedSystemCall

        var description: String {
            switch self {
            case .signal(let number): return "signal \(number)"
            case .guestWord(let word, _): return "guest \(word)"
            case .badKernel: return "VMM error"
            case .blockedSystemCall: return "seccomp kill"
            }
        }
    }

    static let endings: [Ending] = [
        .signal(SIGINT), .signal(SIGTERM), .signal(SIGHUP),
        .guestWord("reset", status: 0),
        .guestWord("tg.triple", status: 2),
        .guestWord("tg.int3", status: 2),
        .badKernel,
        .blockedSystemCall,
    ]

    @Test(arguments: endings)
    func terminalIsRestored(ending: Ending) throws {
        let terminal = try PseudoTerminal()
        let before = terminal.settings()
        var arguments = ["run", "--quiet", "--kernel", GuestImages.testGuestBzImage]
        switch ending {
        case .signal: arguments += ["--cmdline", "tg.halt"]
        case .guestWord(let word, _): arguments += ["--cmdline", word]
        case .badKernel: arguments = ["run", "--kernel", "/nonexistent/kernel"]
        case .blockedSystemCall: arguments += ["--seccomp-selftest", "--cmdline", "tg.halt"]
        }
        let process = try terminal.start(MicroVMProcess.executable, arguments)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var transcript = ""
        if case .signal(let number) = ending {
            #expect(terminal.wait(for: "halting", in: &transcript, timeout: 20), "transcript: \(transcript)")
            #expect(terminal.settings() != before, "the terminal should be raw while the guest runs")
            kill(process.processIdentifier, number)
        }
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        _ = terminal.wait(for: "\u{0}", in: &transcript, timeout: 0.2)
        #expect(process.terminationReason == .exit, "transcript: \(transcript)")
        switch ending {
        case .signal(let number): #expect(process.terminationStatus == 128 + number)
        case .guestWord(_, let status): #expect(process.terminationStatus == status, "transcript: \(transcript)")
        case .badKernel: #expect(process.terminationStatus == 1)
        case .blockedSystemCall:
            #expect(process.terminationStatus == 128 + SIGSYS, "transcript: \(transcript)")
            #expect(transcript.contains("microvm: seccomp: blocked system call 110,"), "transcript: \(transcript)")
        }
        #expect(terminal.settings() == before, "terminal settings changed after \(ending)")
    }

    @Test func consoleSocketIsRemovedAfterASignal() throws {
        let socket = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-exit-\(UUID().uuidString.prefix(8)).sock").path
        let result = try MicroVMProcess.run(["run", "--quiet", "--console-socket", socket, "--kernel", GuestImages.testGuestELF,
                                             "--cmdline", "tg.halt"], timeout: 20) { process, _ in
            let deadline = Date().addingTimeInterval(10)
            while !FileManager.default.fileExists(atPath: socket) && Date() < deadline { usleep(10_000) }
            usleep(200_000)
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(result.status == 128 + SIGTERM)
        #expect(!FileManager.default.fileExists(atPath: socket))
    }
}
