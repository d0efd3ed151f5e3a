import ArgumentParser
import Glibc
import VMM

/// `microvm ctl`: send one request to a running VM's control socket and print the answer.
struct ControlCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctl",
        abstract: "Pause, resume, snapshot, stop or query a VM started with --api-socket.",
        discussion: """
            Prints the VM's answer (one JSON object) on standard output; exits 1 when the VM refused the request.
            `snapshot PATH` writes PATH and PATH.mem, which `microvm restore PATH` starts again; it refuses \
            a PATH or PATH.mem that is the VM's kernel, initrd or a disk, and anything already at \
            PATH.partial or PATH.mem.partial.
            """
    )

    @Argument(help: ArgumentHelp("The control socket given to `microvm run --api-socket`.", valueName: "socket"))
    var socket: String

    @Argument(help: ArgumentHelp("pause, resume, status, stop, or snapshot PATH.", valueName: "op"))
    var operation: String

    @Argument(help: ArgumentHelp("The snapshot's path, for snapshot.", valueName: "args"))
    var arguments: [String] = []

    func validate() throws {
        guard ControlRequest.operations.contains(operation) else {
            throw ValidationError("unknown op '\(operation)'; the ops are \(ControlRequest.operations.joined(separator: ", "))")
        }
        guard arguments.count == (operation == "snapshot" ? 1 : 0) else {
            throw ValidationError(operation == "snapshot" ? "snapshot takes the snapshot's path" : "\(operation) takes no arguments")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let request: ControlRequest = switch operation {
        case "pause": .pause
        case "resume": .resume
        case "stop": .stop
        case "snapshot": .snapshot(path: Self.absolute(arguments[0]))
        default: .status
        }
        do {
            let answer = try ControlClient.send(request, to: socket)
            print(answer.encoded)
            if answer["ok"] != .bool(true) {
                if case .string(let message) = answer["error"] { report("error: \(message)") }
                throw ExitCode(1)
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            report("error: \(error)")
            throw ExitCode(1)
        }
    }

    /// The VM may run in another directory: a relative path means this one.
    static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let found = buffer.withUnsafeMutableBytes { getcwd($0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) != nil }
        guard found else { return path }
        return String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self) + "/" + path
    }
}
