import Foundation
import Testing

/// A guest that writes pseudo-random values to every port and to the registers of every
/// virtio-mmio slot (the console, a disk, a 9p share, a network device whose "passt" is a
/// socket this test drains, vsock, virtio-rng, and the empty slots), and hands each device
/// a queue of random bytes: microvm keeps running (or reports each broken queue once) and
/// never traps.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct HostileGuestTests {
    @Test(arguments: ["serial", "virtio", "virtio", "virtio"])
    func portAndRegisterStorm(console: String) throws {
        let disk = FileManager.default.temporaryDirectory.appendingPathComponent("storm-\(UUID().uuidString.prefix(8)).img").path
        #expect(FileManager.default.createFile(atPath: disk, contents: Data(count: 1 << 20)))
        defer { unlink(disk) }
        let share = FileManager.default.temporaryDirectory.appendingPathComponent("storm-share-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: share, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: share) }
        // Frames the storm sends go to this socket, and no further.
        let sink = try UnixSink(path: share + ".net")
        defer {
            unlink(sink.path)
            unlink(share + ".vsock")
        }
        let result = try MicroVMProcess.run(["run", "--console", console, "--disk", disk, "--share", share + ":storm",
                                             "--net", "passt=" + sink.path, "--vsock", share + ".vsock",
                                             "--kernel", GuestImages.testGuestELF,
                                             "--cmdline", "tg.storm"], timeout: 60)
        let seed = result.lines.first { $0.contains("storm: seed=") } ?? "no seed printed"
        #expect(!result.terminatedBySignal, "\(seed)")
        #expect(result.status == 0, "\(seed); stderr: \(result.stderr)")
        #expect(result.lines.contains("storm: done"), "\(seed)")
        #expect(result.lines.contains("microvm-test-guest: reset"), "\(seed)")
        // At most one report per device: the network (type 1), the disk (type 2),
        // virtio-rng (type 4), the share (type 9), vsock (type 19) and, with virtio, the
        // console (type 3).
        let complaints = result.stderr.split(separator: "\n")
        let devices = ["1", "2", "4", "9", "19"] + (console == "virtio" ? ["3"] : [])
        #expect(complaints.count <= devices.count, "\(seed); stderr: \(result.stderr)")
        #expect(Set(complaints.map { $0.split(separator: ":").prefix(2).joined(separator: ":") }).count == complaints.count,
                "\(seed); one report per device; stderr: \(result.stderr)")
        #expect(complaints.allSatisfy { line in
            devices.contains { line.hasPrefix("microvm: virtio device \($0): ") } && line.hasSuffix("the device needs a reset")
        }, "\(seed); stderr: \(result.stderr)")
        print("storm (\(console)): \(seed)")
    }
}
