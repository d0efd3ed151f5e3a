import Foundation

/// Runs the built `microvm` executable and collects what it printed.
struct MicroVMProcess {
    struct Result {
        let status: Int32
        let terminatedBySignal: Bool
        let rawStdout: [UInt8]
        let stderr: String

        var stdout: String { String(decoding: rawStdout, as: UTF8.self) }
    }

    /// `.build/<config>/microvm`, next to the test bundle.
    static let executable: URL = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("microvm").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("microvm")
    }()

    /// Runs `microvm` with `arguments`, stdin from /dev/null, and waits up to `timeout` seconds.
    /// `whileRunning` gets the process once it started (to send it signals); `environment`,
    /// when given, is all the environment microvm gets.
    static func run(_ arguments: [String], timeout: TimeInterval = 60, environment: [String: String]? = nil,
                    whileRunning: ((Process, () -> String) -> Void)? = nil) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let collected = Collector()
        out.fileHandleForReading.readabilityHandler = { collected.append($0.availableData, error: false) }
        err.fileHandleForReading.readabilityHandler = { collected.append($0.availableData, error: true) }
        try process.run()
        whileRunning?(process, { collected.output })
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.interrupt()
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TimedOut(output: collected.output, errors: collected.errors)
        }
        process.waitUntilExit()
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        collected.append(out.fileHandleForReading.readDataToEndOfFile(), error: false)
        collected.append(err.fileHandleForReading.readDataToEndOfFile(), error: true)
        return Result(status: process.terminationStatus, terminatedBySignal: process.terminationReason == .uncaughtSignal,
                      rawStdout: collected.rawOutput, stderr: collected.errors)
    }

    struct TimedOut: Error, CustomStringConvertible {
        let output: String
        let errors: String
        var description: String { "microvm did not finish in time; output:\n\(output.suffix(3000))\nstandard error:\n\(errors.suffix(2000))" }
    }

    final class Collector: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data()
        private var err = Data()
        func append(_ data: Data, error: Bool) {
            lock.lock()
            if error { err.append(data) } else { out.append(data) }
            lock.unlock()
        }
        var output: String { String(decoding: rawOutput, as: UTF8.self) }
        var rawOutput: [UInt8] { lock.lock(); defer { lock.unlock() }; return Array(out) }
        var errors: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
    }
}

extension MicroVMProcess.Result {
    var lines: [String] { stdout.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n") }
}
