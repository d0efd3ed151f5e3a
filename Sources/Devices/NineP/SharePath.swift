/// A path beneath a share: single names joined by "/" in one string, "" for the share's
/// root. One string and not a list of names, so that what a fid holds is its path's
/// bytes (at most `SharedDirectory.maximumPathLength`) whatever its depth: a list paid
/// a string's overhead per name, 8 times the bytes for a deep path of short names.
struct SharePath: Hashable, Sendable {
    private(set) var joined: String

    static let root = SharePath(joined: "")

    private init(joined: String) { self.joined = joined }

    /// The path of these names, each of which must be a single name (`SharedDirectory.isName`).
    init<Names: Sequence>(_ names: Names) where Names.Element: StringProtocol {
        joined = names.joined(separator: "/")
    }

    var isRoot: Bool { joined.isEmpty }

    /// Bytes the path takes as the host sees it, with a separator per name.
    var length: Int { joined.isEmpty ? 0 : joined.utf8.count + 1 }

    var names: [Substring] { joined.isEmpty ? [] : joined.split(separator: "/", omittingEmptySubsequences: false) }

    var first: Substring? { joined.isEmpty ? nil : joined.prefix { $0 != "/" } }

    var last: Substring? {
        guard !joined.isEmpty else { return nil }
        guard let slash = joined.lastIndex(of: "/") else { return joined[...] }
        return joined[joined.index(after: slash)...]
    }

    /// The directory holding this path; the root is its own parent.
    var parent: SharePath {
        guard let slash = joined.lastIndex(of: "/") else { return .root }
        return SharePath(joined: String(joined[..<slash]))
    }

    func appending(_ name: String) -> SharePath {
        SharePath(joined: joined.isEmpty ? name : joined + "/" + name)
    }

    /// Whether this is `prefix` or lies beneath it.
    func isWithin(_ prefix: SharePath) -> Bool {
        prefix.isRoot || joined == prefix.joined || joined.hasPrefix(prefix.joined + "/")
    }

    /// This path with `prefix` (which it lies within) replaced by `replacement`.
    func moved(from prefix: SharePath, to replacement: SharePath) -> SharePath {
        let rest = joined.utf8.dropFirst(prefix.joined.utf8.count).drop { $0 == UInt8(ascii: "/") }
        return rest.isEmpty ? replacement : replacement.appending(String(Substring(rest)))
    }

    /// The path for openat2, relative to the share's root.
    var relative: String { joined.isEmpty ? "." : joined }
}
