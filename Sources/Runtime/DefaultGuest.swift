import Glibc

/// The guest `microvm run` (and microvm-oci) boots when given no kernel: the minimal
/// Linux and initrd in scripts/build-guest's cache (`$MICROVM_CACHE`, or ~/.cache/microvm).
public enum DefaultGuest {
    public struct Missing: Error, CustomStringConvertible {
        public let path: String
        public var description: String {
            "no kernel given and the default guest is not built (\(path) is missing); build it with: scripts/build-guest linux initrd"
        }
    }

    public static var cacheDirectory: String {
        if let cache = getenv("MICROVM_CACHE") { return String(cString: cache) }
        let home = getenv("HOME").map { String(cString: $0) } ?? "/root"
        return home + "/.cache/microvm"
    }

    public static func locate() throws -> (kernel: String, initrd: String) {
        let kernel = cacheDirectory + "/linux/bzImage"
        let initrd = cacheDirectory + "/initrd/initrd.cpio"
        for path in [kernel, initrd] where access(path, R_OK) != 0 {
            throw Missing(path: path)
        }
        return (kernel, initrd)
    }
}
