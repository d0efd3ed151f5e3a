import Foundation
import Testing

/// A 9p fid holds its path and little more, whatever the path's depth: the server's
/// memory is bounded by `maximumFids` × (`maximumPathLength` + bookkeeping). Measured in
/// a process of its own (vmm-probe), so that no other test moves the figure, with the
/// deepest path of one-letter names a fid can hold, every fid holding a copy of its own.
struct NinePFidMemoryTests {
    /// What docs/reliability.md states a fid may cost: its path's 4096 bytes and 512 of bookkeeping.
    static let bytesPerFid = 4096 + 512

    @Test func everyFidCostsAtMostItsPath() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-fids-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // "fids=N rss_kib=M" with one deep fid, then with every fid deep.
        let figures = try Probe.figures(["9p-fids", directory.path])
        try #require(figures.count == 2 && figures.allSatisfy { $0.count == 2 }, "vmm-probe printed: \(figures)")
        let fids = figures[1][0] - figures[0][0]
        let bytesPerFid = (figures[1][1] - figures[0][1]) * 1024 / max(fids, 1)
        print("9p: \(fids) deep fids took \(figures[1][1] - figures[0][1]) KiB, \(bytesPerFid) bytes each")
        #expect(fids == 8190)
        #expect(bytesPerFid <= Self.bytesPerFid, "a fid took \(bytesPerFid) bytes")
    }
}
