/// A configuration this host cannot run, or whose files cannot be opened.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case vcpuCount(requested: Int, maximum: Int)
    case consoleLog(path: String, reason: String)
    case tooManyDevices(requested: Int, capacity: Int)

    public var description: String {
        switch self {
        case .vcpuCount(let requested, let maximum):
            return "\(requested) vCPUs requested; KVM on this host runs 1 to \(maximum) vCPUs per VM"
        case .consoleLog(let path, let reason):
            return "cannot open the console log \(path): \(reason)"
        case .tooManyDevices(let requested, let capacity):
            return "\(requested) virtio devices requested (disks and the virtio console); microvm has \(capacity) slots"
        }
    }
}
