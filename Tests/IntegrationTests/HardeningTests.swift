import Foundation
import CLinux
import Testing
import VMM

/// What a misbehaving guest or an unlucky moment must not do to microvm: grow its
/// memory, outlast a stop, or hang in its own shutdown.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct HardeningTests {
    static let null = open("/dev/null", O_WRONLY | O_CLOEXEC)

    static func microvm(_ arguments: [String], stdout: Int32 = null, timeout: Double = 30) throws -> ChildProcess.Ending {
        let child = try ChildProcess(MicroVMProcess.executable.path, arguments, stdout: stdout, stderr: null)
        return try #require(child.wait(timeout: timeout), "microvm \(arguments) did not end in \(timeout) s")
    }

    /// One transmit chain of 16 buffers of 96 MiB in a 128 MiB guest: microvm's peak RSS
    /// stays within 64 MiB of the same guest's idle run (it was 1.5 GiB when output was copied).
    @Test func aTransmitFloodDoesNotGrowHostMemory() throws {
        let common = ["run", "--quiet", "--memory", "128M", "--console", "virtio", "--kernel", GuestImages.testGuestELF]
        let idle = try Self.microvm(common + ["--cmdline", "tg.virtio"])
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("txflood-\(UUID().uuidString.prefix(8)).log").path
        let log = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(log); unlink(output) }
        let flood = try Self.microvm(common + ["--cmdline", "tg.virtio tg.txflood"], stdout: log)
        let printed = (try? String(contentsOfFile: output, encoding: .isoLatin1)) ?? ""
        print("txflood: idle peak \(idle.peakResidentKiB) KiB, flood peak \(flood.peakResidentKiB) KiB")
        #expect(idle.status == 0 && flood.status == 0)
        #expect(printed.contains("txflood: done"), "the device must have completed the chain, not refused it")
        #expect(flood.peakResidentKiB - idle.peakResidentKiB < 64 * 1024,
                "peak RSS \(flood.peakResidentKiB) KiB against \(idle.peakResidentKiB) KiB idle")
    }

    /// A guest printing forever into a pipe nobody reads: the vCPU blocks in its write,
    /// and SIGTERM still ends microvm within 2 s with status 143.
    @Test func sigtermEndsAVMWhoseOutputNobodyReads() throws {
        var pipe: [Int32] = [0, 0]
        #expect(Glibc.pipe(&pipe) == 0)
        defer { close(pipe[0]) }
        // One page of pipe: the guest fills it within milliseconds, then its vCPU blocks.
        #expect(fcntl(pipe[1], CLINUX_F_SETPIPE_SZ, 4096) == 4096)
        let child = try ChildProcess(MicroVMProcess.executable.path,
                                     ["run", "--quiet", "--kernel", GuestImages.testGuestELF, "--cmdline", "tg.loop"],
                                     stdout: pipe[1], stderr: Self.null)
        close(pipe[1])
        usleep(1_000_000)
        kill(child.pid, SIGTERM)
        let signalled = Date()
        let ending = try #require(child.wait(timeout: 10), "microvm did not end after SIGTERM")
        let seconds = Date().timeIntervalSince(signalled)
        #expect(ending.status == 143)
        #expect(seconds < 2, "took \(seconds) s")
    }

    /// A stop requested at a random moment while a 4-vCPU VM starts (the boot CPU halts,
    /// the others wait for a SIPI in KVM_RUN), 1,000 times, each VM in a process of its
    /// own: every run ends, with the stop as its exit.
    @Test func stopsAtRandomMomentsNeverHang() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["MICROVM_STOP_SEED"] ?? "") ?? UInt64.random(in: 1...UInt64.max)
        var generator = SplitMix(seed: seed)
        var hung: [UInt32] = []
        var failed: [(UInt32, Int32)] = []
        for _ in 0..<1000 {
            let delay = UInt32(generator.next() % 20_000)
            let child = try ChildProcess(Probe.path, ["stop", GuestImages.testGuestELF, "4", String(delay)],
                                         stdout: Self.null, stderr: Self.null)
            guard let ending = child.wait(timeout: 10) else {
                hung.append(delay)
                continue
            }
            if ending.status != 0 { failed.append((delay, ending.status)) }
        }
        #expect(hung.isEmpty, "seed \(seed) (MICROVM_STOP_SEED replays it): hung with delays \(hung) µs")
        #expect(failed.isEmpty, "seed \(seed): failed (delay µs, status) \(failed.prefix(10))")
    }

    /// The storm's seed, given back with tg.seed, replays the same storm.
    @Test func aPrintedStormSeedReplaysTheStorm() throws {
        func storm(_ seed: String) throws -> MicroVMProcess.Result {
            try MicroVMProcess.run(["run", "--console", "virtio", "--kernel", GuestImages.testGuestELF,
                                    "--cmdline", "tg.storm tg.seed=\(seed)"], timeout: 60)
        }
        let first = try storm("0x5eed1234abcd")
        let second = try storm("5eed1234abcd")
        #expect(first.lines.contains("storm: seed=0x00005eed1234abcd"), "output: \(first.stdout.suffix(300))")
        // From the seed on (the command lines before it differ in how the seed was written).
        func storm(of result: MicroVMProcess.Result) -> ArraySlice<UInt8> {
            let marker = Array("storm: seed=".utf8)
            let start = result.rawStdout.indices.first { result.rawStdout[$0...].starts(with: marker) } ?? result.rawStdout.endIndex
            return result.rawStdout[start...]
        }
        #expect(storm(of: first) == storm(of: second))
        #expect(storm(of: first).count > 20)
        #expect(first.stderr == second.stderr)
        #expect(first.status == 0 && second.status == 0)
    }
}

/// A small seeded generator, so that a failing run can be replayed.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
