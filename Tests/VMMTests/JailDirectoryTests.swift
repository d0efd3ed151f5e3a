@testable import Runtime
import Testing

/// What a jail shows: each directory once, at its absolute path, none beneath another,
/// and never the root itself.
struct JailDirectoryTests {
    @Test func directoriesAreAbsoluteAndNoneIsBeneathAnother() throws {
        let jail = try Jail(directories: ["/run/vm/sockets/", "/run/vm", "/srv/./a//b", "/srv/a/b", "/srv/ab"], capabilities: [], moreFiles: 0)
        #expect(jail.directories == ["/run/vm", "/srv/ab", "/srv/a/b"])
    }

    @Test func aRelativeDirectoryIsTakenFromTheWorkingDirectory() throws {
        let jail = try Jail(directories: [".", "sockets"], capabilities: [], moreFiles: 0)
        #expect(jail.directories == [Jail.absolute(".")])
        #expect(Jail.absolute("sockets") == Jail.absolute(".") + "/sockets" || Jail.absolute(".") == "/")
    }

    @Test func theRootDirectoryIsRefused() {
        #expect(throws: Jail.Error.rootDirectory) { try Jail(directories: ["/tmp/vm", "/"], capabilities: [], moreFiles: 0) }
        #expect(throws: Jail.Error.rootDirectory) { try Jail(directories: ["/./"], capabilities: [], moreFiles: 0) }
    }
}
