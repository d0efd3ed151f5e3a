// libFuzzer target: sequences of 9P2000.L requests, built from the input, served on a
// share in a temporary directory beside another directory that symlinks in the share
// point at. After each input nothing outside the share may have changed. Requests go
// through the codec both ways first, which must give back what was encoded. An input
// starting with 0xff is one raw message instead. One starting with 0xfe is served on a
// share of exports (the share under "share", and read-only under "ro"), with attaches by
// any aname and binds of new tables between requests; its session, saved, must restore
// where every name it was bound is bound again, and where none is only without fids.
import Glibc

let parent: String = {
    var template = Array("/tmp/microvm-fuzz-9p-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
}()
let share = parent + "/share"
let outside = parent + "/outside"

func makeFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
    close(fd)
}

/// Removes everything inside `directory` (made writable first, as the guest may have locked it).
func empty(_ directory: Int32) {
    guard let stream = fdopendir(dup(directory)) else { return }
    defer { closedir(stream) }
    while let entry = readdir(stream) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name == "." || name == ".." { continue }
        if unlinkat(directory, name, 0) == 0 { continue }
        fchmodat(directory, name, 0o700, 0)
        let child = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
        if child >= 0 {
            empty(child)
            close(child)
        }
        unlinkat(directory, name, AT_REMOVEDIR)
    }
}

/// Names, kinds, sizes, modes and contents of everything under `path`, but for what
/// lies in `skipping`.
func snapshot(_ path: String, skipping: String? = nil) -> [String] {
    var lines: [String] = []
    var status = stat()
    if path == skipping { return ["skipped \(path)"] }
    guard lstat(path, &status) == 0 else { return ["missing \(path)"] }
    lines.append("\(path) \(status.st_mode) \(status.st_size) \(status.st_ino)")
    if status.st_mode & S_IFMT == S_IFDIR, let stream = opendir(path) {
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(stream)
        for name in names.sorted() { lines += snapshot(path + "/" + name, skipping: skipping) }
    } else if status.st_mode & S_IFMT == S_IFREG {
        let fd = open(path, O_RDONLY)
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = read(fd, &buffer, buffer.count)
        close(fd)
        lines.append(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self))
    }
    return lines
}

func resetShare() {
    let fd = open(share, O_RDONLY | O_DIRECTORY)
    empty(fd)
    close(fd)
    mkdir(share + "/sub", 0o755)
    makeFile(share + "/file", "inside")
    symlink(outside, share + "/absolute")
    symlink("../outside", share + "/relative")
    symlink("../../../../", share + "/up")
    symlink("sub", share + "/sibling")
}

/// The share and its neighbour, made once, and what they held before any input.
struct Fixture {
    let directory: SharedDirectory
    let readOnly: SharedDirectory
    let baseline: [String]
    let parentBaseline: [String]
    let buffer: UnsafeMutableRawBufferPointer

    init() {
        mkdir(share, 0o755)
        mkdir(outside, 0o755)
        mkdir(outside + "/dir", 0o755)
        makeFile(outside + "/secret", "outside the share")
        resetShare()
        directory = try! SharedDirectory(path: share, readOnly: false)
        readOnly = try! SharedDirectory(path: share, readOnly: true)
        baseline = snapshot(outside)
        parentBaseline = snapshot(parent, skipping: share)
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0x5a)
        atexit { _ = system("chmod -R u+rwx \(parent); rm -rf \(parent)") }
    }
}

let fixture = Fixture()

let names = ["file", "sub", "absolute", "relative", "up", "sibling", "..", ".", "new", "sub/file", "", "x", "secret", "dir"]
/// The exports' names, names a byte away from them, and names no export may have.
let anames = ["share", "ro", "", "Share", "share/..", "..", ".", "ro\0", "/share", String(repeating: "x", count: 64),
              String(repeating: "x", count: 65), "naïve", "a b"]

struct Bytes {
    let data: UnsafePointer<UInt8>
    let size: Int
    var position: Int
    var atEnd: Bool { position >= size }
    mutating func byte() -> UInt8 {
        defer { position += 1 }
        return position < size ? data[position] : 0
    }
    mutating func fid() -> UInt32 { UInt32(byte() % 8) }
    mutating func name() -> String { names[Int(byte()) % names.count] }
    /// One of `anames`, or up to 127 bytes from the input.
    mutating func aname() -> String {
        let choice = byte()
        guard choice & 0x80 != 0 else { return anames[Int(choice) % anames.count] }
        return String(decoding: (0..<Int(choice & 0x7f)).map { _ in byte() }, as: UTF8.self)
    }
    var next: UInt8 { position < size ? data[position] : 0 }
    mutating func small() -> UInt32 { UInt32(byte()) }
    mutating func word() -> UInt32 { UInt32(byte()) | UInt32(byte()) << 8 | UInt32(byte()) << 16 | UInt32(byte()) << 24 }
    mutating func offset() -> UInt64 { UInt64(word()) | UInt64(byte()) << 32 }
}

func request(from bytes: inout Bytes) -> NinePRequest {
    switch bytes.byte() % 28 {
    case 0: return .version(msize: bytes.word(), version: bytes.byte() % 4 == 0 ? "9P2000.u" : NineP.version)
    case 1: return .attach(fid: bytes.fid(), authFid: NineP.noFid, user: "root", tree: bytes.aname(), numericUser: bytes.small())
    case 2: return .walk(fid: bytes.fid(), newFid: bytes.fid(), names: (0..<Int(bytes.byte() % 5)).map { _ in bytes.name() })
    case 3: return .lopen(fid: bytes.fid(), flags: bytes.word())
    case 4: return .lcreate(fid: bytes.fid(), name: bytes.name(), flags: bytes.word(), mode: bytes.word(), gid: bytes.small())
    case 5: return .read(fid: bytes.fid(), offset: bytes.offset(), count: bytes.word())
    case 6: return .write(fid: bytes.fid(), offset: UInt64(bytes.word() % 8192), count: UInt32(bytes.byte()) * 16)
    case 7: return .clunk(fid: bytes.fid())
    case 8: return .remove(fid: bytes.fid())
    case 9: return .getattr(fid: bytes.fid(), mask: 0x3fff)
    case 10:
        return .setattr(fid: bytes.fid(), NineP.SetAttributes(valid: bytes.word() & 0x1ff, mode: bytes.word(), uid: bytes.small(),
                                                               gid: bytes.small(), size: UInt64(bytes.word() % 65536)))
    case 11: return .readdir(fid: bytes.fid(), offset: bytes.offset(), count: bytes.word())
    case 12: return .mkdir(directory: bytes.fid(), name: bytes.name(), mode: bytes.word(), gid: bytes.small())
    case 13: return .unlinkat(directory: bytes.fid(), name: bytes.name(), flags: bytes.byte() & 1 == 1 ? 0x200 : 0)
    case 14: return .renameat(oldDirectory: bytes.fid(), oldName: bytes.name(), newDirectory: bytes.fid(), newName: bytes.name())
    case 15: return .rename(fid: bytes.fid(), directory: bytes.fid(), name: bytes.name())
    case 16: return .symlink(directory: bytes.fid(), name: bytes.name(), target: bytes.name(), gid: bytes.small())
    case 17: return .readlink(fid: bytes.fid())
    case 18: return .link(directory: bytes.fid(), fid: bytes.fid(), name: bytes.name())
    case 19: return .mknod(directory: bytes.fid(), name: bytes.name(), mode: bytes.word(), major: bytes.small(), minor: bytes.small(),
                           gid: bytes.small())
    case 20: return .statfs(fid: bytes.fid())
    case 21: return .fsync(fid: bytes.fid(), dataOnly: bytes.small())
    case 22:
        return .lock(fid: bytes.fid(), NineP.Lock(type: bytes.byte() % 4, start: bytes.offset(), length: bytes.offset(),
                                                  processID: bytes.small(), clientID: bytes.name()), flags: bytes.small())
    case 23:
        return .getlock(fid: bytes.fid(), NineP.Lock(type: bytes.byte() % 4, start: bytes.offset(), length: bytes.offset(),
                                                     processID: bytes.small(), clientID: bytes.name()))
    case 24: return .xattrwalk(fid: bytes.fid(), newFid: bytes.fid(), name: bytes.byte() & 1 == 1 ? "" : bytes.name())
    case 25: return .xattrcreate(fid: bytes.fid(), name: bytes.name(), size: UInt64(bytes.small()), flags: 0)
    case 26: return .flush(oldTag: UInt16(bytes.byte()))
    default: return .auth(authFid: bytes.fid(), user: "", tree: "", numericUser: 0)
    }
}


/// A table of up to two exports, each the share writable or read-only, under any aname.
func table(from bytes: inout Bytes) -> [String: SharedDirectory] {
    var table: [String: SharedDirectory] = [:]
    for _ in 0..<Int(bytes.byte() % 3) {
        table[bytes.aname()] = bytes.byte() & 1 == 0 ? fixture.directory : fixture.readOnly
    }
    return table
}

/// Saves the session and restores it on a server with every name it was ever bound, and
/// on one with none, which only a session without fids restores on.
func checkRestore(_ server: NinePServer, bound: [String: SharedDirectory]) {
    var writer = StateWriter()
    server.saveState(into: &writer)
    let restored = try! NinePServer(exports: bound)
    var reader = StateReader(writer.bytes)
    precondition((try? restored.restoreState(from: &reader)) != nil && reader.isAtEnd, "a saved session did not restore")
    precondition(restored.fidCount == server.fidCount, "a restore lost fids")
    let unbound = try! NinePServer(exports: [:])
    var again = StateReader(writer.bytes)
    precondition(((try? unbound.restoreState(from: &again)) != nil) == (server.fidCount == 0),
                 "a session restored without its exports")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let hasExports = size > 0 && data[0] == 0xfe
    var bound = ["share": fixture.directory, "ro": fixture.readOnly]
    let server = hasExports ? try! NinePServer(exports: bound) : NinePServer(directory: fixture.directory)
    let buffer = fixture.buffer
    _ = server.handle(.version(msize: 65536, version: NineP.version))
    _ = server.handle(.attach(fid: 0, authFid: NineP.noFid, user: "root", tree: hasExports ? "share" : "", numericUser: 0))
    if size > 0 && data[0] == 0xff {
        if let (_, request) = try? NinePRequest.decode(Array(UnsafeBufferPointer(start: data + 1, count: size - 1)), limit: 65536) {
            _ = server.handle(request, data: [UnsafeRawBufferPointer(buffer)], into: [buffer])
        }
    } else {
        var bytes = Bytes(data: data, size: size, position: hasExports ? 1 : 0)
        var steps = 0
        while !bytes.atEnd && steps < 64 {
            steps += 1
            if hasExports && bytes.next < 16 {
                _ = bytes.byte()
                let table = table(from: &bytes)
                let valid = table.keys.allSatisfy(NinePExport.isName)
                precondition(((try? server.bind(exports: table)) != nil) == valid, "bind took or refused the wrong names")
                if valid { bound.merge(table) { kept, _ in kept } }
                continue
            }
            let request = request(from: &bytes)
            var encoded = request.encode(tag: 1)
            if case .write(_, _, let count) = request { encoded += [UInt8](repeating: 0x41, count: Int(count)) }
            let decoded = try? NinePRequest.decode(encoded, limit: 1 << 20)
            precondition(decoded?.request == request, "the codec changed \(request)")
            let response = server.handle(request, data: [UnsafeRawBufferPointer(buffer)], into: [buffer])
            precondition((try? NinePResponse.decode(response.encode(tag: 1)))?.response == response, "the codec changed \(response)")
            precondition(server.fidCount <= NinePServer.maximumFids && server.openFileCount <= NinePServer.maximumOpenFiles)
        }
    }
    if hasExports { checkRestore(server, bound: bound) }
    precondition(snapshot(outside) == fixture.baseline, "something outside the share changed")
    precondition(snapshot(parent, skipping: share) == fixture.parentBaseline, "something beside the share changed")
    resetShare()
    return 0
}
