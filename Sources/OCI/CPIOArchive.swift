/// A cpio archive in the "newc" format the Linux initramfs unpacker reads: what
/// microvm-oci appends to the initrd. Owners are root and times zero.
struct CPIOArchive {
    private var bytes: [UInt8] = []
    private var inode: UInt32 = 1

    mutating func addDirectory(_ name: String, mode: UInt32 = 0o755) {
        add(name: name, mode: 0o040000 | mode, contents: [])
    }

    mutating func addFile(_ name: String, contents: [UInt8], mode: UInt32 = 0o644) {
        add(name: name, mode: 0o100000 | mode, contents: contents)
    }

    /// The archive with its trailer.
    mutating func finish() -> [UInt8] {
        add(name: "TRAILER!!!", mode: 0, contents: [])
        return bytes
    }

    private mutating func add(name: String, mode: UInt32, contents: [UInt8]) {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [inode, mode, 0, 0, 1, 0, UInt32(contents.count), 0, 0, 0, 0, UInt32(nameBytes.count), 0]
        inode += 1
        bytes += Array("070701".utf8)
        for field in fields {
            let hex = String(field, radix: 16, uppercase: true)
            bytes += Array((String(repeating: "0", count: 8 - hex.count) + hex).utf8)
        }
        bytes += nameBytes
        pad()
        bytes += contents
        pad()
    }

    private mutating func pad() {
        bytes += [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4)
    }
}
