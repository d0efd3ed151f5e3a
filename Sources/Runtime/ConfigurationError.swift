/// A configuration this host cannot run, or whose files cannot be opened.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    case vcpuCount(requested: Int, maximum: Int)
    case consoleLogLimit(UInt64)
    case tooManyDevices(requested: Int, capacity: Int)
    case badShareTag(String)
    case shareTagTooLong(String, maximum: Int)
    case duplicateShareTag(String)
    case profileRate(Int)
    case commandStreamsNeedSerialConsole
    case disksDiffer(machine: Int, session: Int)
    case missingShare(String)

    public var description: String {
        switch self {
        case .vcpuCount(let requested, let maximum):
            return "\(requested) vCPUs requested; KVM on this host runs 1 to \(maximum) vCPUs per VM"
        case .consoleLogLimit(let limit):
            return "a console log limit of \(limit) bytes; a console log holds \(VMConfiguration.consoleLogLimits.lowerBound) bytes to 1 TiB"
        case .tooManyDevices(let requested, let capacity):
            return "\(requested) virtio devices requested (disks, shares, the network, virtio-rng and the virtio console); microvm has \(capacity) slots"
        case .badShareTag(let tag):
            return "the share tag '\(tag)' must be letters, digits, '-', '_' and '.' only"
        case .shareTagTooLong(let tag, let maximum):
            return "the share tag '\(tag.prefix(32))…' has \(tag.utf8.count) bytes; a virtio-9p tag has at most \(maximum)"
        case .duplicateShareTag(let tag):
            return "two shares have the tag '\(tag)'; give one another tag with HOSTDIR:TAG"
        case .profileRate(let rate):
            return "a profile rate of \(rate) Hz; microvm samples at \(GuestProfiler.rates.lowerBound) to \(GuestProfiler.rates.upperBound) Hz"
        case .commandStreamsNeedSerialConsole:
            return "the command's own streams use hvc0 and hvc1, so the console must be the serial port"
        case .disksDiffer(let machine, let session):
            return "the machine has room for \(machine) disk\(machine == 1 ? "" : "s") and the run gives \(session), or one read-only where the machine's is read-write (or the other way round)"
        case .missingShare(let tag):
            return "the machine has no share tagged \(tag), or the run gives no directory for it"
        }
    }
}
