import OCI

/// runc's command line: global options, a command, its options and operands. Options
/// take `--name value` or `--name=value`; unknown ones are errors, except the global
/// ones that only matter to runc (`--systemd-cgroup`, `--debug`, `--rootless`, `--criu`).
struct RuntimeArguments {
    var root = StateStore.defaultRoot
    /// `--allowed-images DIR`, repeatable: where kernel and initrd annotations may point.
    var allowedImages: [String] = []
    var log = RuntimeLog()
    var command: String?
    var options: [String: String] = [:]
    var flags: Set<String> = []
    var operands: [String] = []

    /// Options that take a value, by command; every other option is a flag.
    static let valueOptions: [String: Set<String>] = [
        "create": ["bundle", "pid-file", "console-socket", "preserve-fds"],
        "vm": ["bundle", "ready-fd"],
    ]
    static let flagOptions: [String: Set<String>] = [
        "create": ["no-pivot", "no-new-keyring"],
        "kill": ["all"],
        "delete": ["force"],
    ]
    static let shortOptions = ["b": "bundle", "a": "all", "f": "force"]

    init(_ arguments: [String]) throws(OCIError) {
        var index = 0
        func value(_ name: String, _ inline: String?) throws(OCIError) -> String {
            if let inline { return inline }
            index += 1
            guard index < arguments.count else { throw .usage("option --\(name) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            if command == nil {
                guard argument.hasPrefix("-") else {
                    command = argument
                    index += 1
                    continue
                }
                let (name, inline) = Self.split(argument)
                switch name {
                case "root": root = try value(name, inline)
                case "allowed-images": allowedImages.append(try value(name, inline))
                case "log": log.path = try value(name, inline)
                case "log-format":
                    let format = try value(name, inline)
                    guard format == "json" || format == "text" else { throw .usage("--log-format \(format): give json or text") }
                    log.json = format == "json"
                case "rootless", "criu": _ = try value(name, inline)
                case "systemd-cgroup", "debug": break
                case "version", "v": flags.insert("version")
                case "help", "h": flags.insert("help")
                default: throw .usage("unknown global option \(argument)")
                }
            } else if argument == "--" {
                operands += arguments[(index + 1)...]
                break
            } else if argument.hasPrefix("-") && argument.count > 1 {
                var (name, inline) = Self.split(argument)
                name = Self.shortOptions[name] ?? name
                let command = self.command ?? ""
                if Self.valueOptions[command]?.contains(name) == true {
                    options[name] = try value(name, inline)
                } else if Self.flagOptions[command]?.contains(name) == true {
                    flags.insert(name)
                } else {
                    throw .usage("\(command): unknown option \(argument)")
                }
            } else {
                operands.append(argument)
            }
            index += 1
        }
    }

    private static func split(_ argument: String) -> (String, String?) {
        var text = Substring(argument)
        while text.hasPrefix("-") { text = text.dropFirst() }
        if let equals = text.firstIndex(of: "=") {
            return (String(text[..<equals]), String(text[text.index(after: equals)...]))
        }
        return (String(text), nil)
    }

    /// The single container ID the command takes, checked here for every command alike.
    func containerID(extra: Int = 0) throws(OCIError) -> String {
        guard let id = operands.first else { throw .usage("\(command ?? ""): no container ID given") }
        guard operands.count <= 1 + extra else { throw .usage("\(command ?? ""): unexpected argument \(operands[1 + extra])") }
        try StateStore.checkID(id)
        return id
    }
}
