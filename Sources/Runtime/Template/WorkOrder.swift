import Glibc

/// What a VM restored from a template does, handed to its waiting /init over the
/// work-order port (guest/initrd/work-order.c reads it): the clock, fresh entropy and
/// the host name, then shell assignments for /init: the root, the shares to mount, the
/// network, the command, its environment and directory.
public struct WorkOrder: Sendable, Equatable {
    /// What the guest mounts as its root, if anything but the initrd.
    public enum Root: Sendable, Equatable {
        /// The first disk, /dev/vda.
        case disk(readOnly: Bool)
        /// The export `VMConfiguration.Share.rootTag` of the 9p device.
        case share(readOnly: Bool)
    }

    /// The command and its arguments; empty for a shell on the console.
    public var command: [String]
    /// `NAME=VALUE` words, set after /init's own PATH, HOME and TERM.
    public var environment: [String]
    public var workingDirectory: String?
    public var hostname: String?
    public var root: Root?
    /// The exports mounted at /mnt/NAME.
    public var shares: [String]
    /// Disks bound to the template's slots: /init waits until the guest sees their size.
    public var disks: Int
    /// Which of them are read-only (0 for /dev/vda): /init marks them so, since a slot's
    /// device offered a writable disk when the template's guest probed it.
    public var readOnlyDisks: [Int] = []
    /// Configure eth0 by DHCP.
    public var network: Bool
    /// Files the guest writes before anything else (microvm-oci's /oci/config).
    public var files: [(path: String, content: [UInt8])]

    /// The most an order may be: what the port's console holds.
    public static let maximumLength = 60 * 1024

    public init(command: [String] = [], environment: [String] = [], workingDirectory: String? = nil, hostname: String? = nil,
                root: Root? = nil, shares: [String] = [], disks: Int = 0, network: Bool = false,
                files: [(path: String, content: [UInt8])] = []) {
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.hostname = hostname
        self.root = root
        self.shares = shares
        self.disks = disks
        self.network = network
        self.files = files
    }

    public static func == (left: WorkOrder, right: WorkOrder) -> Bool {
        left.command == right.command && left.environment == right.environment && left.workingDirectory == right.workingDirectory
            && left.hostname == right.hostname && left.root == right.root && left.shares == right.shares && left.disks == right.disks && left.readOnlyDisks == right.readOnlyDisks && left.network == right.network
            && left.files.map(\.path) == right.files.map(\.path) && left.files.map(\.content) == right.files.map(\.content)
    }

    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case environment(String)
        case nulByte(String)
        case tooLong(Int)
        case hostname(String)

        public var description: String {
            switch self {
            case .environment(let word): return "the environment word '\(word.prefix(64))' is not NAME=VALUE with a shell variable's name"
            case .nulByte(let what): return "\(what) holds a NUL byte, which no guest program can receive"
            case .tooLong(let length): return "the work order is \(length) bytes; at most \(WorkOrder.maximumLength) reach the guest"
            case .hostname(let name): return "the host name '\(name.prefix(80))' has \(name.utf8.count) bytes; Linux takes 1 to 64"
            }
        }
    }

    /// The bytes on the port: a header with the length, then the order. `clock` is the
    /// host's wall-clock time, `entropy` bytes for the guest's pool.
    public func encoded(clock: timespec, entropy: [UInt8]) throws(Error) -> [UInt8] {
        for word in command + environment + [workingDirectory, hostname].compactMap({ $0 }) where word.utf8.contains(0) {
            throw .nulByte("the word '\(word.prefix(64))'")
        }
        if let hostname, !(1...64).contains(hostname.utf8.count) { throw .hostname(hostname) }
        var script = ""
        switch root {
        case nil: break
        case .disk(let readOnly): script += "root=/dev/vda\n" + (readOnly ? "rootro=1\n" : "")
        case .share(let readOnly): script += "root=9p:\(VMConfiguration.Share.rootTag)\n" + (readOnly ? "rootro=1\n" : "")
        }
        if !shares.isEmpty { script += "shares=\(Self.quoted(shares.joined(separator: ",")))\n" }
        if disks > 0 { script += "disks=\(disks)\n" }
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let readOnly = readOnlyDisks.filter { (0..<min(disks, letters.count)).contains($0) }.map { "vd\(letters[$0])" }
        if !readOnly.isEmpty { script += "rodisks='\(readOnly.joined(separator: " "))'\n" }
        // A `microvm.net=` word of the kernel command line (manual, say) goes first.
        if network { script += "net=${net:-dhcp}\n" }
        if let workingDirectory { script += "workdir=\(Self.quoted(workingDirectory))\n" }
        script += "set --" + command.map { " " + Self.quoted($0) }.joined() + "\n"
        script += "order_environment() {\n"
        for word in environment {
            guard let equals = word.firstIndex(of: "="), Self.isVariableName(word[..<equals]) else { throw .environment(word) }
            script += "    export \(Self.quoted(word))\n"
        }
        script += "    :\n}\n"
        var text = "clock \(clock.tv_sec) \(clock.tv_nsec)\nentropy \(Self.hex(entropy))\n"
        if let hostname { text += "hostname \(Self.hex(Array(hostname.utf8)))\n" }
        for file in files { text += "file \(Self.hex(Array(file.path.utf8))) \(Self.hex(file.content))\n" }
        let body = Array((text + "script\n" + script).utf8)
        guard body.count <= Self.maximumLength else { throw .tooLong(body.count) }
        let length = String(body.count, radix: 16)
        return Array("microvm-order \(String(repeating: "0", count: 8 - length.count))\(length)\n".utf8) + body
    }

    /// The word in single quotes, which keep every byte but a quote, itself closed, escaped
    /// and reopened. Bytes, not characters: a quote followed by a combining mark is one
    /// character, but the shell sees the quote.
    static func quoted(_ word: String) -> String {
        var bytes: [UInt8] = [UInt8(ascii: "'")]
        for byte in word.utf8 {
            if byte == UInt8(ascii: "'") { bytes += Array("'\\''".utf8) } else { bytes.append(byte) }
        }
        bytes.append(UInt8(ascii: "'"))
        return String(decoding: bytes, as: UTF8.self)
    }

    static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) || $0 == 0x5f }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
