import Glibc

/// The guest `microvm run` boots when given no kernel: the minimal Linux and
/// initrd in scripts/build-guest's cache.
enum DefaultGuest {
    struct Missing: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "no --kernel given and the default guest is not built (\(path) is missing); build it with: scripts/build-guest linux initrd"
        }
    }

    static var cacheDirectory: String {
        if let cache = getenv("MICROVM_CACHE") { return String(cString: cache) }
        let home = getenv("HOME").map { String(cString: $0) } ?? "/root"
        return home + "/.cache/microvm"
    }

    static func locate() throws -> (kernel: String, initrd: String) {
        let kernel = cacheDirectory + "/linux/bzImage"
        let initrd = cacheDirectory + "/initrd/initrd.cpio"
        for path in [kernel, initrd] where access(path, R_OK) != 0 {
            throw Missing(path: path)
        }
        return (kernel, initrd)
    }
}
