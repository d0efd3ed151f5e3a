import Memory

/// A kernel's code symbols, sorted by address, for naming sampled instruction pointers:
/// read from an ELF file's `.symtab` (a vmlinux, or any ELF guest) or from a System.map
/// (what a bzImage's build leaves beside it).
public struct SymbolTable: Sendable {
    /// Start addresses, ascending and unique.
    public let starts: [UInt64]
    /// One past each symbol's last byte: its size where the file gives one, else the next
    /// symbol's start (or the end of its section).
    public let ends: [UInt64]
    public let names: [String]

    public struct Symbol: Equatable, Sendable {
        public var address: UInt64
        /// Zero when unknown.
        public var size: UInt64
        public var name: String
        /// Where the code this symbol is in ends, when known (an ELF section's end).
        public var limit: UInt64?

        public init(address: UInt64, size: UInt64 = 0, name: String, limit: UInt64? = nil) {
            self.address = address
            self.size = size
            self.name = name
            self.limit = limit
        }
    }

    /// Of symbols at the same address, the one with a size wins, then the first given.
    public init(_ symbols: [Symbol]) {
        let sorted = symbols.enumerated().sorted { left, right in
            if left.element.address != right.element.address { return left.element.address < right.element.address }
            if (left.element.size > 0) != (right.element.size > 0) { return left.element.size > 0 }
            return left.offset < right.offset
        }.map(\.element)
        var kept: [Symbol] = []
        for symbol in sorted where kept.last?.address != symbol.address { kept.append(symbol) }
        starts = kept.map(\.address)
        names = kept.map(\.name)
        ends = kept.indices.map { index in
            let symbol = kept[index]
            if symbol.size > 0 { return symbol.address &+ symbol.size }
            let next = index + 1 < kept.count ? kept[index + 1].address : symbol.limit ?? symbol.address &+ 1
            return min(next, symbol.limit ?? next)
        }
    }

    public var count: Int { starts.count }

    /// The index of the symbol whose code holds `address`, if any.
    public func index(of address: UInt64) -> Int? {
        var low = 0
        var high = starts.count
        while low < high {
            let middle = (low + high) / 2
            if starts[middle] <= address { low = middle + 1 } else { high = middle }
        }
        guard low > 0, address < ends[low - 1] else { return nil }
        return low - 1
    }

    /// Reads `path`: an ELF file's symbol table, or else a System.map.
    public static func load(path: String) throws(BootError) -> SymbolTable {
        let bytes = try ImageFile.read(path)
        let table = ELFLoader.matches(bytes) ? try elf(bytes, file: path) : try systemMap(bytes, file: path)
        guard table.count > 0 else { throw .invalidSymbols(file: path, reason: "it names no code symbols") }
        return table
    }

    /// Whether `path` starts like an ELF file (false when it cannot be read: loading it says why).
    public static func isELF(path: String) -> Bool {
        guard let file = try? ImageFile(path) else { return false }
        return (try? file.startsLikeELF()) ?? false
    }

    static let sectionSymbolTable: UInt32 = 2
    static let sectionExecutable: UInt64 = 0x4
    static let symbolNoType: UInt8 = 0
    static let symbolFunction: UInt8 = 2

    /// Function and label symbols that lie in executable sections.
    static func elf(_ image: [UInt8], file: String) throws(BootError) -> SymbolTable {
        func fail(_ reason: String) -> BootError { .invalidSymbols(file: file, reason: reason) }
        guard image.count >= 64, image[4] == 2, image[5] == 1 else { throw fail("not a 64-bit little-endian ELF file") }
        let sectionOffset = image.littleEndian(UInt64.self, at: 40)!
        let sectionSize = Int(image.littleEndian(UInt16.self, at: 58)!)
        let sectionCount = Int(image.littleEndian(UInt16.self, at: 60)!)
        guard sectionCount > 0 else { throw fail("no section headers (stripped?)") }
        guard sectionSize >= 64, sectionOffset < UInt64(image.count),
              UInt64(sectionSize * sectionCount) <= UInt64(image.count) - sectionOffset
        else { throw fail("section headers lie past the end of the file (truncated?)") }

        struct Section { let type: UInt32; let flags: UInt64; let address: UInt64; let offset: UInt64; let size: UInt64; let link: Int }
        let sections = (0..<sectionCount).map { index in
            let base = Int(sectionOffset) + index * sectionSize
            return Section(type: image.littleEndian(UInt32.self, at: base + 4)!, flags: image.littleEndian(UInt64.self, at: base + 8)!,
                           address: image.littleEndian(UInt64.self, at: base + 16)!, offset: image.littleEndian(UInt64.self, at: base + 24)!,
                           size: image.littleEndian(UInt64.self, at: base + 32)!, link: Int(image.littleEndian(UInt32.self, at: base + 40)!))
        }
        func inFile(_ section: Section) -> Bool {
            section.offset <= UInt64(image.count) && section.size <= UInt64(image.count) - section.offset
        }
        guard let table = sections.first(where: { $0.type == sectionSymbolTable }) else { throw fail("no symbol table (stripped?)") }
        guard table.link < sections.count, inFile(table), inFile(sections[table.link]) else {
            throw fail("the symbol table lies past the end of the file (truncated?)")
        }
        let strings = sections[table.link]
        var symbols: [Symbol] = []
        let entrySize = 24
        for entry in 0..<Int(table.size) / entrySize {
            let base = Int(table.offset) + entry * entrySize
            let nameOffset = UInt64(image.littleEndian(UInt32.self, at: base)!)
            let kind = image[base + 4] & 0xf
            let sectionIndex = Int(image.littleEndian(UInt16.self, at: base + 6)!)
            guard kind == symbolFunction || kind == symbolNoType, sectionIndex > 0, sectionIndex < sections.count,
                  sections[sectionIndex].flags & sectionExecutable != 0, nameOffset < strings.size
            else { continue }
            let start = Int(strings.offset + nameOffset)
            let end = image[start..<Int(strings.offset + strings.size)].firstIndex(of: 0) ?? Int(strings.offset + strings.size)
            guard end > start else { continue }
            let section = sections[sectionIndex]
            symbols.append(Symbol(address: image.littleEndian(UInt64.self, at: base + 8)!, size: image.littleEndian(UInt64.self, at: base + 16)!,
                                  name: String(decoding: image[start..<end], as: UTF8.self), limit: section.address &+ section.size))
        }
        return SymbolTable(symbols)
    }

    /// `ADDRESS TYPE NAME` lines (what `nm` prints); code symbols only (types T, t, W, w).
    static func systemMap(_ text: [UInt8], file: String) throws(BootError) -> SymbolTable {
        var symbols: [Symbol] = []
        for (number, line) in text.split(separator: 0x0a, omittingEmptySubsequences: false).enumerated() {
            let fields = line.split(separator: 0x20, omittingEmptySubsequences: true)
            // Blank lines, and nm's undefined symbols, which have no address.
            guard !fields.isEmpty, !(fields.count == 2 && fields[0].count == 1) else { continue }
            guard fields.count >= 3, let address = UInt64(String(decoding: fields[0], as: UTF8.self), radix: 16),
                  fields[1].count == 1
            else {
                throw .invalidSymbols(file: file, reason: "line \(number + 1) is not \"ADDRESS TYPE NAME\" (neither ELF nor a System.map)")
            }
            guard [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: "W"), UInt8(ascii: "w")].contains(fields[1].first!) else { continue }
            symbols.append(Symbol(address: address, name: String(decoding: fields[2], as: UTF8.self)))
        }
        return SymbolTable(symbols)
    }
}
