import Foundation
import Testing

/// microvm-oci driven by the real client: Debian's Podman (with conmon) runs the sample
/// root file system, imported as an image, in a microVM. Each test is one boot and
/// carries the checks that belong to it.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveRootfs && Podman.isInstalled, Podman.missing))
struct OCIRuntimeTests {
    @Test func runPrintsSharesAndExitsWithTheContainersStatus() throws {
        let work = try WorkloadTests.scratch("oci-run")
        defer { try? FileManager.default.removeItem(at: work) }
        try "hello from the host\n".write(to: work.appendingPathComponent("greeting"), atomically: true, encoding: .utf8)
        let name = "microvm-oci-run-\(getpid())"
        // -i: the container reads standard input (empty here) to its end before it goes on.
        let result = try Podman.run(["run", "--rm", "-i", "--name", name, "--network", "none"] + Podman.limits
            + ["-v", work.path + ":/data", Podman.image(),
               "sh", "-c", "cat; echo hi; cat /data/greeting; echo oops >&2; echo back > /data/back; cat /etc/hostname; exit 7"], timeout: 600)
        #expect(result.status == 7, "stderr: \(result.stderr)")
        #expect(result.stdout.hasPrefix("hi\nhello from the host\n"), "stdout: \(result.stdout)")
        #expect(result.stderr.contains("oops") && !result.stdout.contains("oops"), "stdout and stderr stay apart: \(result.stderr)")
        #expect(try String(contentsOf: work.appendingPathComponent("back"), encoding: .utf8) == "back\n")
        // --rm: nothing is left, in Podman or in the runtime's state.
        #expect(try !Podman.run(["ps", "-a", "--format", "{{.Names}}"]).stdout.contains(name))
        #expect(try FileManager.default.contentsOfDirectory(atPath: Podman.runtimeRoot).allSatisfy { !Podman.containerID(name).contains($0) })
    }

    @Test func detachedContainerRunsPausesAndStopsAndItsStateIsValid() throws {
        let name = "microvm-oci-detached-\(getpid())"
        // Generous: `create` restores the template of the container's machine, which the suite's first container makes.
        let started = try Podman.run(["run", "-d", "--name", name] + Podman.limits + [Podman.image(), "sh", "-c", "echo started; exec sleep 1000"],
                                     timeout: 900)
        #expect(started.status == 0, "stderr: \(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Podman.run(["rm", "-f", id]) }
        #expect(try Podman.run(["ps", "--format", "{{.ID}} {{.Status}}"]).stdout.contains("\(id.prefix(12)) Up"))

        let state = try Podman.runtime(["state", id])
        #expect(state.status == 0, "\(state.stderr)")
        try Podman.validateState(state.stdout)
        #expect(state.stdout.contains("\"status\":\"running\""))

        // The guest has booted once its process printed.
        let deadline = Date().addingTimeInterval(600)
        while Date() < deadline, try !Podman.run(["logs", id]).stdout.contains("started") { sleep(2) }
        #expect(try Podman.run(["logs", id]).stdout.contains("started"))

        // Paused through the VMM (its vCPUs stop), reported as paused, and running again after unpause.
        let paused = try Podman.run(["pause", id])
        #expect(paused.status == 0, "\(paused.stderr)")
        #expect(try Podman.run(["inspect", id, "--format", "{{.State.Status}}"]).stdout.hasPrefix("paused"))
        #expect(try Podman.runtime(["state", id]).stdout.contains("\"status\":\"paused\""))
        #expect(try Podman.runtime(["pause", id]).stderr.contains("cannot pause container \(id): it is paused"))
        let unpaused = try Podman.run(["unpause", id])
        #expect(unpaused.status == 0, "\(unpaused.stderr)")
        #expect(try Podman.run(["inspect", id, "--format", "{{.State.Status}}"]).stdout.hasPrefix("running"))

        // SIGTERM reaches the guest's process, which dies of it well before the timeout.
        let stopping = Date()
        let stop = try Podman.run(["stop", "-t", "120", id], timeout: 200)
        #expect(stop.status == 0, "\(stop.stderr)")
        #expect(Date().timeIntervalSince(stopping) < 100)
        #expect(try Podman.run(["inspect", id, "--format", "{{.State.ExitCode}}"]).stdout.hasPrefix("143"))
    }

    @Test func interactiveShellThroughTheConsoleSocket() throws {
        let terminal = try PseudoTerminal()
        let process = try terminal.start(URL(fileURLWithPath: Podman.executable), ["--runtime", Podman.runtimeExecutable, "run", "-it", "--rm",
                                         "--network", "none"] + Podman.limits + [try Podman.image(), "sh"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        var transcript = ""
        #expect(terminal.wait(for: "# ", in: &transcript, timeout: 600), "transcript: \(transcript.suffix(2000))")
        let mark = transcript.endIndex
        terminal.type("echo $((6 * 7))-answer; tty\r")
        #expect(terminal.wait(for: "42-answer", in: &transcript, after: mark, timeout: 240), "transcript: \(transcript.suffix(2000))")
        // The terminal is the container's console, as runc shows it.
        #expect(terminal.wait(for: "/dev/console", in: &transcript, after: mark, timeout: 240), "transcript: \(transcript.suffix(2000))")
        terminal.type("exit 3\r")
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!process.isRunning)
        process.waitUntilExit()
        #expect(process.terminationStatus == 3)
    }
}

/// The runtime alone, on bad input and through its life cycle without running the guest.
@Suite(.enabled(if: KVMHost.isAvailable && GuestImages.haveRootfs, GuestImages.missingRootfs))
struct OCIRuntimeInputTests {
    @Test func badInputGetsOneLineErrorsAndLeavesNothing() throws {
        let work = try WorkloadTests.scratch("oci-input")
        defer { try? FileManager.default.removeItem(at: work) }
        let root = work.appendingPathComponent("state").path
        let log = work.appendingPathComponent("log.json").path
        let bundle = work.appendingPathComponent("bundle")
        try FileManager.default.createDirectory(at: bundle.appendingPathComponent("rootfs"), withIntermediateDirectories: true)
        func runtime(_ arguments: [String]) throws -> Podman.Result {
            try Podman.runtime(["--root", root, "--log", log, "--log-format", "json"] + arguments)
        }
        func expectError(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            try? FileManager.default.removeItem(atPath: log)
            let result = try runtime(arguments)
            #expect(result.status != 0, sourceLocation: sourceLocation)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("microvm-oci: ") && lines[0].contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
            let logged = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(logged.contains("\"level\":\"error\"") && logged.contains(message), "log: \(logged)", sourceLocation: sourceLocation)
            let left = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
            #expect(left.isEmpty || left == ["c1"], "left behind: \(left)", sourceLocation: sourceLocation)
        }
        let create = ["create", "--bundle", bundle.path, "c1"]
        try expectError(create, "has no config.json")
        try "{\"ociVersion\": \"1.0.2\",".write(to: bundle.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try expectError(create, "config.json: malformed JSON")
        func config(version: String = "1.0.2", root: String = "rootfs") -> String {
            // Booted, not restored: `create` then builds the VM without making a template first.
            #"{"ociVersion": "\#(version)", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "\#(root)"}, "linux": {"namespaces": [{"type": "network"}]}, "annotations": {"org.microvm.template": "false"}}"#
        }
        try config(version: "2.0.0").write(to: bundle.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try expectError(create, "ociVersion 2.0.0 is not supported")
        try config(root: "missing").write(to: bundle.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        try expectError(create, "is not a directory")
        for command in [["start", "nosuch"], ["kill", "nosuch", "KILL"], ["delete", "nosuch"], ["delete", "--force", "nosuch"], ["state", "nosuch"]] {
            try expectError(command, "container nosuch does not exist")
        }
        try expectError(["create", "--bundle", bundle.path, "../escape"], "invalid container ID")
        try expectError(["frobnicate", "c1"], "has no command frobnicate")
        try expectError(["kill", "c1", "NOSIG"], "unknown signal NOSIG")

        // A container built but not started: no vCPU runs until start, so nothing boots here.
        try config().write(to: bundle.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        let pidFile = work.appendingPathComponent("pid").path
        let created = try runtime(["create", "--bundle", bundle.path, "--pid-file", pidFile, "c1"])
        #expect(created.status == 0, "\(created.stderr)")
        let pid = try String(contentsOfFile: pidFile, encoding: .utf8)
        let state = try runtime(["state", "c1"])
        #expect(state.stdout.contains("\"status\":\"created\"") && state.stdout.contains("\"pid\":\(pid)"), "\(state.stdout)")
        try Podman.validateState(state.stdout)
        try expectError(create, "container c1 already exists")
        #expect(try runtime(["kill", "c1", "SIGKILL"]).status == 0)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, try !runtime(["state", "c1"]).stdout.contains("stopped") { usleep(20_000) }
        #expect(try runtime(["state", "c1"]).stdout.contains("\"status\":\"stopped\""))
        try expectError(["start", "c1"], "cannot start container c1: it is stopped")
        #expect(try runtime(["delete", "c1"]).status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).isEmpty)

        let features = try runtime(["features"])
        #expect(features.status == 0 && features.stdout.contains("\"org.microvm.memory\""))
        #expect(try runtime(["--version"]).stdout.hasPrefix("microvm-oci version "))
    }
}

/// Inputs that would hang or go to the wrong place: each gets one line and a non-zero
/// status well within its timeout (a command that hangs is killed and fails the test).
/// None builds a VM, so none needs /dev/kvm or a guest.
struct OCIRuntimePathTests {
    static let timeout: TimeInterval = 20

    private func expectError(_ arguments: [String], _ message: String, directory: String? = nil,
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try Podman.runtime(arguments, timeout: Self.timeout, directory: directory)
        #expect(result.status != 0, sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].hasPrefix("microvm-oci: ") && lines[0].contains(message), "\(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test func aFIFOAsConfigOrStateIsRefusedWithoutWaiting() throws {
        let work = try WorkloadTests.scratch("oci-fifo")
        defer { try? FileManager.default.removeItem(at: work) }
        let root = work.appendingPathComponent("state").path
        let bundle = work.appendingPathComponent("bundle").path
        try FileManager.default.createDirectory(atPath: bundle + "/rootfs", withIntermediateDirectories: true)
        #expect(mkfifo(bundle + "/config.json", 0o600) == 0)
        try expectError(["--root", root, "create", "--bundle", bundle, "c1"], "config.json: it is a FIFO, not a regular file")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).isEmpty)

        try FileManager.default.createDirectory(atPath: root + "/c2", withIntermediateDirectories: true)
        #expect(mkfifo(root + "/c2/state.json", 0o600) == 0)
        for command in [["state", "c2"], ["kill", "c2", "KILL"], ["start", "c2"], ["delete", "c2"]] {
            try expectError(["--root", root] + command, "state.json: it is a FIFO, not a regular file")
        }
    }

    @Test func aRelativeRootIsInTheWorkingDirectoryAndAnEmptyOneIsRefused() throws {
        let work = try WorkloadTests.scratch("oci-root")
        defer { try? FileManager.default.removeItem(at: work) }
        let name = "microvm-oci-relative-\(getpid())"
        // Where the state went when a relative --root was taken as absolute.
        defer { try? FileManager.default.removeItem(atPath: "/" + name) }
        try expectError(["--root", name + "/state", "state", "nosuch"], "container nosuch does not exist", directory: work.path)
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: work.path + "/" + name + "/state", isDirectory: &isDirectory) && isDirectory.boolValue)
        #expect(!FileManager.default.fileExists(atPath: "/" + name))
        try expectError(["--root", "", "state", "nosuch"], "--root: the state directory's path is empty", directory: work.path)
        try expectError(["--root=", "delete", "nosuch"], "--root: the state directory's path is empty", directory: work.path)
    }

    /// Builds a VM (the test guest, from an allowed directory; no vCPU runs), so it needs /dev/kvm.
    @Test(.enabled(if: KVMHost.isAvailable && GuestImages.haveTestGuest, GuestImages.missingTestGuest))
    func aFIFOAsThePIDFileIsRefusedAndTheVMProcessEnds() throws {
        let work = try WorkloadTests.scratch("oci-pid")
        defer { try? FileManager.default.removeItem(at: work) }
        let root = work.appendingPathComponent("state").path
        let bundle = work.appendingPathComponent("bundle").path
        try FileManager.default.createDirectory(atPath: bundle + "/rootfs", withIntermediateDirectories: true)
        let images = URL(fileURLWithPath: GuestImages.testGuestELF).deletingLastPathComponent().path
        try #"""
            {"ociVersion": "1.0.2", "process": {"args": ["true"], "cwd": "/"}, "root": {"path": "rootfs"},
             "annotations": {"org.microvm.kernel": "\#(GuestImages.testGuestELF)", "org.microvm.initrd": "\#(GuestImages.testGuestBzImage)"},
             "linux": {"namespaces": [{"type": "network"}]}}
            """#.write(toFile: bundle + "/config.json", atomically: true, encoding: .utf8)
        let pidFile = work.appendingPathComponent("pid").path
        #expect(mkfifo(pidFile, 0o600) == 0)
        try expectError(["--root", root, "--allowed-images", images, "create", "--bundle", bundle, "--pid-file", pidFile, "c1"],
                        "cannot create \(pidFile): No such device or address")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).isEmpty)
        let processes = try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { Int($0) != nil }
        let left = processes.filter { (try? String(contentsOfFile: "/proc/\($0)/cmdline", encoding: .utf8))?.contains(root) == true }
        #expect(left.isEmpty, "VM processes left: \(left)")
    }

    @Test func everyCommandChecksTheContainerID() throws {
        let work = try WorkloadTests.scratch("oci-id")
        defer { try? FileManager.default.removeItem(at: work) }
        let root = work.appendingPathComponent("state").path
        for command in [["vm", "--bundle", work.path, "../escape"], ["state", "../escape"], ["kill", "a/b"], ["delete", ".."], ["start", ""]] {
            try expectError(["--root", root] + command, "invalid container ID")
        }
    }
}

/// Podman, the image the tests run, and the runtime beside the microvm executable.
enum Podman {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static let executable = "/usr/bin/podman"
    static let isInstalled = FileManager.default.isExecutableFile(atPath: executable)
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/conmon")
    static let missing: Comment = "podman and conmon are not installed (scripts/setup), the sample root file system is not built, or /dev/kvm is unavailable"
    static let runtimeExecutable = MicroVMProcess.executable.deletingLastPathComponent().appendingPathComponent("microvm-oci").path
    static let runtimeRoot = "/run/microvm-oci"
    /// This host's hard limits are below Podman's defaults.
    static let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    static let imageName = "localhost/microvm-oci-test"

    /// The sample root file system as an image, imported once per test run.
    static func image() throws -> String {
        try imported.get()
    }

    private static let imported: Swift.Result<String, any Error> = Swift.Result { () throws(any Error) -> String in
        let archive = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-oci-image-\(getpid()).tar").path
        defer { try? FileManager.default.removeItem(atPath: archive) }
        let made = try WorkloadTests.shell("tar -C '\(GuestImages.rootfsTree)' -cf '\(archive)' . && \(executable) import -q '\(archive)' \(imageName)")
        guard made.status == 0 else { throw Failure(description: "podman import failed: \(made.output)") }
        return imageName
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func run(_ arguments: [String], timeout: TimeInterval = 120) throws -> Result {
        try execute(executable, ["--runtime", runtimeExecutable] + arguments, timeout: timeout)
    }

    /// The runtime alone, in `directory` when one is given; one that outlives `timeout` fails the test.
    static func runtime(_ arguments: [String], timeout: TimeInterval = 60, directory: String? = nil) throws -> Result {
        guard let directory else { return try execute(runtimeExecutable, arguments, timeout: timeout) }
        return try execute("/bin/sh", ["-c", #"cd "$0" && exec "$@""#, directory, runtimeExecutable] + arguments, timeout: timeout)
    }

    static func containerID(_ name: String) -> String {
        (try? run(["inspect", name, "--format", "{{.ID}}"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? name
    }

    /// Output goes to files, not pipes: a container's VM process keeps the streams of the
    /// `create` that started it, so a pipe would not end with the command.
    private static func execute(_ path: String, _ arguments: [String], timeout: TimeInterval) throws -> Result {
        let directory = try WorkloadTests.scratch("oci-output")
        defer { try? FileManager.default.removeItem(at: directory) }
        let outPath = directory.appendingPathComponent("out").path
        let errPath = directory.appendingPathComponent("err").path
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = open(outPath, O_WRONLY | O_CLOEXEC)
        let err = open(errPath, O_WRONLY | O_CLOEXEC)
        defer {
            close(out)
            close(err)
        }
        let read = { (file: String) in (try? String(contentsOfFile: file, encoding: .utf8)) ?? "" }
        let child = try ChildProcess(path, arguments, stdout: out, stderr: err)
        guard let ending = child.wait(timeout: timeout) else { throw MicroVMProcess.TimedOut(output: read(outPath), errors: read(errPath)) }
        return Result(status: ending.status, stdout: read(outPath), stderr: read(errPath))
    }

    /// The OCI runtime spec's state, as a JSON schema (from its "State" section), checked
    /// with Debian's python3-jsonschema (scripts/setup).
    static let stateSchema = #"""
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
         "required": ["ociVersion", "id", "status", "bundle"],
         "properties": {
           "ociVersion": {"type": "string", "pattern": "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-.+)?$"},
           "id": {"type": "string", "minLength": 1},
           "status": {"enum": ["creating", "created", "running", "stopped"]},
           "pid": {"type": "integer", "minimum": 1},
           "bundle": {"type": "string", "pattern": "^/"},
           "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
         "if": {"properties": {"status": {"enum": ["created", "running"]}}},
         "then": {"required": ["pid"]}}
        """#

    static func validateState(_ state: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let directory = try WorkloadTests.scratch("oci-schema")
        defer { try? FileManager.default.removeItem(at: directory) }
        try stateSchema.write(to: directory.appendingPathComponent("schema.json"), atomically: true, encoding: .utf8)
        try state.write(to: directory.appendingPathComponent("state.json"), atomically: true, encoding: .utf8)
        let check = try WorkloadTests.shell("""
            cd '\(directory.path)' && /usr/bin/python3 -c 'import json, jsonschema; jsonschema.validate(json.load(open("state.json")), json.load(open("schema.json"))); print("valid")'
            """)
        #expect(check.status == 0 && check.output.contains("valid"), "\(state)\n\(check.output)", sourceLocation: sourceLocation)
    }
}
