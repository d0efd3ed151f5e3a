import Glibc
import Memory

/// The names in an uncompressed newc cpio archive, read header by header: whether an
/// initrd has the program a template's /init needs (`usr/bin/work-order`), which decides
/// whether a run can start from a template or must boot.
enum InitrdListing {
    /// Whether `path` is a newc archive holding `name`; false for anything else (a
    /// compressed initrd boots, as before templates).
    static func contains(_ name: String, in path: String) -> Bool {
        guard let file = try? InputFile(path, kinds: .regular) else { return false }
        let size = Int64(file.status.st_size)
        var offset: Int64 = 0
        var header = [UInt8](repeating: 0, count: 110)
        // A bounded walk: an initrd has far fewer entries than this.
        for _ in 0..<100_000 {
            guard offset + 110 <= size, pread(file.fd, &header, 110, off_t(offset)) == 110,
                  header.starts(with: Array("070701".utf8)),
                  let fileSize = field(header, 6), let nameSize = field(header, 11), nameSize > 0, nameSize <= 4096 else { return false }
            var nameBytes = [UInt8](repeating: 0, count: nameSize)
            guard pread(file.fd, &nameBytes, nameSize, off_t(offset + 110)) == nameSize else { return false }
            let entry = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            if entry == name { return true }
            if entry == "TRAILER!!!" { return false }
            offset += Int64((110 + nameSize + 3) & ~3)
            offset += Int64((fileSize + 3) & ~3)
        }
        return false
    }

    /// The header's `index`th eight-digit hexadecimal field (after the six-byte magic).
    private static func field(_ header: [UInt8], _ index: Int) -> Int? {
        let start = 6 + index * 8
        return Int(String(decoding: header[start..<start + 8], as: UTF8.self), radix: 16)
    }
}
