/// The directory a fid was attached to, under the aname that chose it ("" on a share of
/// one directory). Each fid keeps its own, so that a later bind moves no fid and a walk
/// never leaves the directory its attach reached.
struct NinePExport {
    let name: String
    let directory: SharedDirectory

    /// Longest export name, in bytes.
    static let maximumNameLength = 64

    /// Whether `name` may name an export: 1 to 64 bytes of A-Z, a-z, 0-9, '.', '_' and '-'.
    static func isName(_ name: String) -> Bool {
        (1...maximumNameLength).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }
}
