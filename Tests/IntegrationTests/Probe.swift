import Foundation
import Testing

/// The vmm-probe executable beside microvm (built by `swift build`), which measures in a
/// process of its own so that no other test moves the figures.
enum Probe {
    static let path = MicroVMProcess.executable.deletingLastPathComponent().appendingPathComponent("vmm-probe").path

    /// Runs vmm-probe with `arguments` and reads its lines of "name=N name=M …" as rows of
    /// numbers; records an issue, and gives what it read, when the probe fails.
    static func figures(_ arguments: [String]) throws -> [[Int]] {
        let output = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "vmm-probe: \(text)")
        return text.split(separator: "\n").map { line in
            line.split(separator: " ").compactMap { Int($0.split(separator: "=").last ?? "") }
        }
    }
}
