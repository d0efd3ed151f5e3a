/// Why a kernel, initrd or command line cannot be booted. Messages name the file
/// and the fault, since users mostly hand us files we did not build.
public enum BootError: Error, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case invalidKernel(file: String, reason: String)
    case invalidInitrd(file: String, reason: String)
    case invalidCommandLine(reason: String)
    case invalidSymbols(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): return "cannot read \(file): \(reason)"
        case .invalidKernel(let file, let reason): return "kernel \(file): \(reason)"
        case .invalidInitrd(let file, let reason): return "initrd \(file): \(reason)"
        case .invalidCommandLine(let reason): return "kernel command line: \(reason)"
        case .invalidSymbols(let file, let reason): return "symbols \(file): \(reason)"
        }
    }
}
