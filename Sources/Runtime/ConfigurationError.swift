/// A configuration this host cannot run, or whose files cannot be opened.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case vcpuCount(requested: Int, maximum: Int)
    case consoleLog(path: String, reason: String)

    public var description: String {
        switch self {
        case .vcpuCount(let requested, let maximum):
            return "\(requested) vCPUs requested; KVM on this host runs 1 to \(maximum) vCPUs per VM"
        case .consoleLog(let path, let reason):
            return "cannot open the console log \(path): \(reason)"
        }
    }
}
