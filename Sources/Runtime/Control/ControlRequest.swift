/// A request on the control socket (docs/control-api.md): one JSON object per line,
/// `{"op": "pause"}` and so on.
public enum ControlRequest: Equatable, Sendable {
    case pause
    case resume
    case status
    case stop
    /// Saves the VM to `path` (the state) and `path.mem` (guest RAM).
    case snapshot(path: String)

    public static let operations = ["pause", "resume", "status", "stop", "snapshot"]

    /// Reads one request line; a line that is not one gets an error saying what is wrong.
    public static func parse(_ line: some Collection<UInt8>) -> Result<ControlRequest, JSONObject.ParseError> {
        let object: JSONObject
        do {
            object = try JSONObject.parse(line)
        } catch {
            return .failure(error)
        }
        guard case .string(let op) = object["op"] else { return .failure(.init(description: "the request has no \"op\" string")) }
        let allowed: Set<String> = op == "snapshot" ? ["op", "path"] : ["op"]
        if let extra = object.members.first(where: { !allowed.contains($0.key) }) {
            return .failure(.init(description: "\"\(op)\" takes no member \"\(extra.key)\""))
        }
        switch op {
        case "pause": return .success(.pause)
        case "resume": return .success(.resume)
        case "status": return .success(.status)
        case "stop": return .success(.stop)
        case "snapshot":
            guard case .string(let path) = object["path"], !path.isEmpty else {
                return .failure(.init(description: "\"snapshot\" needs a \"path\" string"))
            }
            return .success(.snapshot(path: path))
        default:
            return .failure(.init(description: "unknown op \"\(op)\"; the ops are \(operations.joined(separator: ", "))"))
        }
    }

    /// The request as the client sends it, without the newline.
    public var encoded: String {
        switch self {
        case .pause: JSONObject([("op", .string("pause"))]).encoded
        case .resume: JSONObject([("op", .string("resume"))]).encoded
        case .status: JSONObject([("op", .string("status"))]).encoded
        case .stop: JSONObject([("op", .string("stop"))]).encoded
        case .snapshot(let path): JSONObject([("op", .string("snapshot")), ("path", .string(path))]).encoded
        }
    }
}
