/// The kernel command line: the user's words plus what the VMM appends (devices,
/// host needs). Checked against the kernel's limit before it reaches guest memory.
public struct KernelCommandLine: Equatable, Sendable {
    public private(set) var text: String

    public init(_ text: String = "") {
        self.text = text
    }

    /// Appends `parameter`, separated by a space.
    public mutating func append(_ parameter: String) {
        guard !parameter.isEmpty else { return }
        text = text.isEmpty ? parameter : text + " " + parameter
    }

    /// Adds kernel parameters where the kernel reads them: before a lone `--`, after
    /// which every word goes to init.
    public mutating func insertKernelParameters(_ parameters: [String]) {
        guard !parameters.isEmpty else { return }
        var words = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let position = words.firstIndex(of: "--") ?? words.count
        words.insert(contentsOf: parameters, at: position)
        text = words.filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// The NUL-terminated bytes for a kernel that accepts at most `limit` characters
    /// (the setup header's `cmdline_size`, which excludes the terminator).
    public func bytes(limit: Int) throws(BootError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        if utf8.contains(0) {
            throw .invalidCommandLine(reason: "it contains a NUL byte")
        }
        guard utf8.count <= limit else {
            throw .invalidCommandLine(reason: "\(utf8.count) bytes is longer than the kernel's limit of \(limit)")
        }
        return utf8 + [0]
    }
}
