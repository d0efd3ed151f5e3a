/// Why a table of 9p exports was refused (`Virtio9P.bind(exports:)`, `NinePServer.bind(exports:)`).
public enum NinePExportError: Error, Equatable, CustomStringConvertible {
    /// Not 1 to 64 bytes of A-Z, a-z, 0-9, '.', '_' and '-'.
    case badName(String)
    /// The share serves one directory to every attach, whatever its aname: it has no exports.
    case oneDirectory

    public var description: String {
        switch self {
        case .badName(let name):
            "cannot bind the 9p export \(name.debugDescription): a name is 1 to 64 bytes of A-Z, a-z, 0-9, '.', '_' and '-'"
        case .oneDirectory:
            "cannot bind 9p exports to a share of one directory"
        }
    }
}
