/// Why a runtime command failed, in one line.
public enum OCIError: Error, Equatable, CustomStringConvertible {
    /// The command line itself is wrong.
    case usage(String)
    /// The bundle's config.json cannot be read or asks for something microvm-oci cannot do.
    case config(String)
    case bundle(String)
    case noSuchContainer(String)
    case alreadyExists(String)
    /// The container is not in a state that allows the command.
    case wrongState(id: String, status: String, command: String)
    /// A system call or the VM failed.
    case failed(String)

    public var description: String {
        switch self {
        case .usage(let message): message
        case .config(let message): "config.json: \(message)"
        case .bundle(let message): message
        case .noSuchContainer(let id): "container \(id) does not exist"
        case .alreadyExists(let id): "container \(id) already exists"
        case .wrongState(let id, let status, let command): "cannot \(command) container \(id): it is \(status)"
        case .failed(let message): message
        }
    }
}
