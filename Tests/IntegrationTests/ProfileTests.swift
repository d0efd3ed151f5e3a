import Foundation
import Testing

/// `--profile` on the test guest's storm: the samples land in the storm's own functions,
/// named from the ELF's symbol table or, for the bzImage, from a System.map made by nm.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct ProfileTests {
    static func scratch(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("microvm-profile-\(getpid())-\(name)").path
    }

    /// Rows of the flat profile: function name → samples.
    static func rows(_ text: String) -> [String: Int] {
        var rows: [String: Int] = [:]
        for line in text.split(separator: "\n").dropFirst(3) {
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            if fields.count == 3, let count = Int(fields[0]) { rows[String(fields[2].drop { $0 == " " })] = count }
        }
        return rows
    }

    func profile(kernel: String, extra: [String]) throws -> (flat: String, folded: String, stderr: String) {
        let path = Self.scratch(UUID().uuidString)
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: path + ".folded")
        }
        let result = try MicroVMProcess.run(["run", "--kernel", kernel, "--cmdline", "tg.storm tg.seed=0x5eed", "--profile", path] + extra,
                                            timeout: 120)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.lines.contains("storm: done"))
        return (try String(contentsOfFile: path, encoding: .utf8), try String(contentsOfFile: path + ".folded", encoding: .utf8), result.stderr)
    }

    @Test func aProfileOfTheStormNamesTheStormsFunctions() throws {
        let (flat, folded, stderr) = try profile(kernel: GuestImages.testGuestELF, extra: [])
        let header = flat.split(separator: "\n").first.map(String.init) ?? ""
        #expect(header.hasPrefix("microvm guest profile: "), "\(flat)")
        #expect(header.contains("at 1000 Hz on 1 vCPU"))
        // The test guest runs at CPL 0 only.
        #expect(header.hasSuffix("kernel 100.00%, user 0.00%"))
        let rows = Self.rows(flat)
        let total = rows.values.reduce(0, +)
        #expect(total > 100, "\(flat)")
        // The storm's port loop and its random numbers are most of the run.
        #expect((rows["storm"] ?? 0) + (rows["random"] ?? 0) > total / 2, "\(flat)")
        #expect(folded.contains("kernel;storm \(rows["storm"] ?? -1)\n"), "\(folded)")
        #expect(folded.split(separator: "\n").count == rows.count)
        #expect(stderr.contains("microvm: profile: microvm guest profile: "))
        #expect(stderr.contains("profile: samples  percent  function\n"))
    }

    @Test func aBzImageIsProfiledWithItsSystemMap() throws {
        let map = Self.scratch("System.map")
        defer { try? FileManager.default.removeItem(atPath: map) }
        let nm = Process()
        nm.executableURL = URL(fileURLWithPath: "/usr/bin/nm")
        nm.arguments = [GuestImages.testGuestELF]
        FileManager.default.createFile(atPath: map, contents: nil)
        nm.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: map))
        try nm.run()
        nm.waitUntilExit()
        try #require(nm.terminationStatus == 0, "nm failed")
        let (flat, _, _) = try profile(kernel: GuestImages.testGuestBzImage, extra: ["--symbols", map, "--profile-rate", "200"])
        #expect(flat.contains(" at 200 Hz on 1 vCPU"), "\(flat)")
        let rows = Self.rows(flat)
        #expect((rows["storm"] ?? 0) + (rows["random"] ?? 0) > rows.values.reduce(0, +) / 2, "\(flat)")
    }
}
