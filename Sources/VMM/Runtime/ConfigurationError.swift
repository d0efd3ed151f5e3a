/// A configuration this host cannot run.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case vcpuCount(requested: Int, maximum: Int)

    public var description: String {
        switch self {
        case .vcpuCount(let requested, let maximum):
            return "\(requested) vCPUs requested; KVM on this host runs 1 to \(maximum) vCPUs per VM"
        }
    }
}
