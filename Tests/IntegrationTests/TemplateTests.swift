import Foundation
import Testing

/// `microvm run` from templates of the minimal Linux (docs/templates.md): the work order
/// reaches the waiting /init intact, each run binds its own shares and disks after the
/// restore, the clock and the random number generator are the run's own, a guest that
/// cannot carry out its order ends with one line and a status, and the store builds a
/// template once, refuses another user's directory and makes a damaged one again. The
/// runs share the default template of the cache with the other suites; only the store's
/// own checks build one in a directory of their own.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveRootfs, GuestImages.missingRootfs))
struct TemplateTests {
    @Test func theWorkOrderCarriesTheCommandItsEnvironmentTheClockAndFreshRandomness() throws {
        let script = #"printf '[%s]' "$@"; echo; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; echo; "#
            + #"echo "$GREETING in $(pwd) on $(hostname)"; exit 7"#
        let arguments = ["run", "--quiet", "--env", "GREETING=hello world", "--workdir", "/tmp", "--hostname", "clone",
                         "--", "sh", "-c", script, "zero", "two words", "it's", "$HOME", ""]
        let first = try MicroVMProcess.run(arguments, timeout: 600)
        let second = try MicroVMProcess.run(arguments, timeout: 120)
        for result in [first, second] {
            #expect(result.status == 7, "stderr: \(result.stderr)")
            #expect(result.lines.contains("[two words][it's][$HOME][]"), "output: \(result.stdout.suffix(2000))")
            #expect(result.lines.contains("hello world in /tmp on clone"), "output: \(result.stdout.suffix(2000))")
            let clock = result.lines.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.first ?? 0
            #expect(abs(clock - Int(Date().timeIntervalSince1970)) < 120, "the guest's clock says \(clock)")
        }
        #expect(!second.stderr.contains("booting the guest once"), "the second run made a template again: \(second.stderr)")
        let random = [first, second].map { result in result.lines.first { $0.count == 32 && $0.allSatisfy(\.isHexDigit) } }
        #expect(random[0] != nil && random[0] != random[1], "two clones drew the same bytes: \(random)")
    }

    @Test func sharesAndDisksAreTheRunsOwn() throws {
        let work = try WorkloadTests.scratch("template")
        defer { try? FileManager.default.removeItem(at: work) }
        for name in ["one", "two"] {
            let directory = work.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data("in \(name)\n".utf8).write(to: directory.appendingPathComponent("file"))
        }
        let disk = work.appendingPathComponent("disk.img")
        try Data(repeating: 0x61, count: 1 << 20).write(to: disk)
        for name in ["one", "two"] {
            let share = work.appendingPathComponent(name).path
            let result = try MicroVMProcess.run(["run", "--quiet", "--share", share + ":data", "--disk", disk.path + ",ro", "--",
                                                 "sh", "-c", "cat /mnt/data/file; echo made > /mnt/data/out; cat /sys/block/vda/size; head -c 4 /dev/vda; echo"],
                                                timeout: 600)
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.lines.contains("in \(name)"), "output: \(result.stdout.suffix(2000))")
            #expect(result.lines.contains("2048"), "the disk's size (sectors) did not reach the guest: \(result.stdout.suffix(2000))")
            #expect(result.lines.contains("aaaa"))
            #expect((try? String(contentsOfFile: share + "/out", encoding: .utf8)) == "made\n")
        }
    }

    @Test func anOrderTheGuestCannotCarryOutEndsTheRun() throws {
        let result = try MicroVMProcess.run(["run", "--quiet", "--", "/no/such/command", "x"], timeout: 600)
        #expect(result.status == 127, "stderr: \(result.stderr)")
        let tooLong = try MicroVMProcess.run(["run", "--quiet", "--", "sh", "-c", String(repeating: "x", count: 70_000)], timeout: 60)
        #expect(tooLong.status == 1)
        #expect(tooLong.stderr.contains("the work order is"), "stderr: \(tooLong.stderr)")
    }

    /// One build in a store of the test's own: two processes that ask at once build it
    /// once; the same template damaged is refused with one line and made again; a store
    /// that belongs to another user is refused.
    @Test func theStoreBuildsOnceAndTrustsNoDamagedOrForeignTemplate() throws {
        let store = try WorkloadTests.scratch("templates")
        defer { try? FileManager.default.removeItem(at: store) }
        let environment = ProcessInfo.processInfo.environment.merging(["MICROVM_TEMPLATES": store.path]) { $1 }
        let collected = Collected()
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            collected.add(Result { try MicroVMProcess.run(["template", "create"], timeout: 900, environment: environment) })
        }
        let results = try collected.results.map { try $0.get() }
        for result in results { #expect(result.status == 0, "stderr: \(result.stderr)") }
        #expect(results.filter { $0.stderr.contains("booting the guest once") }.count == 1, "\(results.map(\.stderr))")
        let key = try #require(results[0].stdout.split(separator: " ").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(results[1].stdout.hasPrefix(key))

        let state = store.appendingPathComponent(key).appendingPathComponent("vm.snap")
        var bytes = try Data(contentsOf: state)
        bytes[bytes.count / 2] ^= 0xff
        try bytes.write(to: state)
        #expect {
            _ = try MicroVMProcess.run(["run", "--", "true"], timeout: 30, environment: environment)
        } throws: { error in
            let errors = (error as? MicroVMProcess.TimedOut)?.errors ?? ""
            return errors.contains("the template \(key) cannot be used (the snapshot's checksum does not match: the file is damaged); making it again")
                && errors.contains("booting the guest once")
        }

        #expect(chown(store.path, 12345, 12345) == 0)
        let foreign = try MicroVMProcess.run(["run", "--", "true"], timeout: 30, environment: environment)
        #expect(foreign.status == 1)
        #expect(foreign.stderr.contains("the template directory \(store.path) belongs to uid 12345, not to this user"), "stderr: \(foreign.stderr)")
    }
}

/// Results gathered from threads.
private final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var gathered: [Result<MicroVMProcess.Result, any Error>] = []

    func add(_ result: Result<MicroVMProcess.Result, any Error>) {
        lock.lock()
        gathered.append(result)
        lock.unlock()
    }

    var results: [Result<MicroVMProcess.Result, any Error>] {
        lock.lock()
        defer { lock.unlock() }
        return gathered
    }
}
