import Foundation
import Synchronization
import Testing
import VMM

@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
struct SMPTestGuestTests {
    @Test(arguments: [1, 2, 4])
    func testGuestWakesEveryCPU(cpus: Int) throws {
        let result = try MicroVMProcess.run(["run", "--cpus", "\(cpus)", "--kernel", GuestImages.testGuestBzImage, "--cmdline", "tg.smp"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(result.lines.contains("smp: \(cpus) cpus alive"), "output: \(result.stdout)")
    }

    @Test func impossibleCPUCountsAreRefused() throws {
        let maximum = try Hypervisor().maximumVCPUs
        for cpus in ["0", "-1", "100000"] {
            let result = try MicroVMProcess.run(["run", "--quiet", "--cpus=\(cpus)", "--kernel", GuestImages.testGuestELF])
            #expect(!result.terminatedBySignal)
            #expect(result.status == 1)
            #expect(result.stderr == "microvm: error: \(cpus) vCPUs requested; KVM on this host runs 1 to \(maximum) vCPUs per VM\n")
        }
    }

    @Test func sigtermStopsFourRunningVCPUs() throws {
        let result = try MicroVMProcess.run(["run", "--cpus", "4", "--kernel", GuestImages.testGuestELF, "--cmdline", "tg.smp tg.halt"],
                                            timeout: 30) { process, output in
            let deadline = Date().addingTimeInterval(20)
            while !output().contains("microvm-test-guest: halting") && Date() < deadline { usleep(10_000) }
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(result.lines.contains("smp: 4 cpus alive"))
        #expect(!result.terminatedBySignal)
        #expect(result.status == 128 + SIGTERM)
    }

    /// In process: after `run()` returns, none of the VM's vCPU threads is left.
    @Test func noVCPUThreadOutlivesTheRun() throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-smp-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let configuration = VMConfiguration(kernel: GuestImages.testGuestELF, commandLine: KernelCommandLine("tg.smp tg.halt"),
                                            memorySize: 64 << 20, vcpuCount: 4, consoleLog: log, consoleInput: false)
        let vm = try MicroVM(configuration)
        let exit = Mutex<VMExit?>(nil)
        let runner = Thread { exit.withLock { $0 = vm.run() } }
        runner.start()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("halting") { usleep(10_000) }
        #expect(vCPUThreads() == 4)
        vm.requestStop()
        while Date() < deadline, exit.withLock({ $0 }) == nil { usleep(10_000) }
        #expect(exit.withLock { $0 } == .stopRequested)
        #expect(vCPUThreads() == 0)
    }

    func vCPUThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            ((try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? "").hasPrefix("microvm-vcpu")
        }.count
    }
}
