import Memory

/// Loads an x86_64 ELF kernel (vmlinux): PT_LOAD segments at their physical
/// addresses. A PVH note (XEN_ELFNOTE_PHYS32_ENTRY) selects the PVH entry; without
/// one the kernel is entered at `e_entry` through the 64-bit boot protocol.
public enum ELFLoader {
    static let magic: [UInt8] = [0x7f, 0x45, 0x4c, 0x46]
    static let machineX86_64: UInt16 = 62
    static let typeLoad: UInt32 = 1
    static let typeNote: UInt32 = 4
    static let xenPhys32Entry: UInt32 = 18

    /// Whether `image` starts like an ELF file.
    public static func matches(_ image: [UInt8]) -> Bool {
        image.count >= 4 && Array(image[0..<4]) == magic
    }

    struct Segment {
        let offset: Int
        let fileSize: Int
        let physical: UInt64
        let virtual: UInt64
        let memorySize: UInt64
    }

    public static func load(_ image: [UInt8], file: String, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        try load(ImageBytes(image), file: file, into: memory)
    }

    /// Loads straight from the file: only the headers and the loadable segments are read,
    /// each segment directly into guest memory (a vmlinux is mostly symbols and debug
    /// information the guest never sees).
    static func load(_ file: borrowing ImageFile, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        try load(file.source, file: file.path, into: memory)
    }

    static func load(_ image: some ImageSource, file: String, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        func fail(_ reason: String) -> BootError { .invalidKernel(file: file, reason: reason) }
        let header = try image.bytes(at: 0, count: min(64, image.count))
        guard matches(header), header.count >= 20 else { throw fail("too short for an ELF header") }
        guard header[4] == 2 else {
            let machine = header.littleEndian(UInt16.self, at: 18) ?? 0
            throw fail("a 32-bit ELF file (machine \(machine)); microvm boots x86_64 kernels")
        }
        guard header[5] == 1 else { throw fail("a big-endian ELF file; microvm boots x86_64 kernels") }
        let machine = header.littleEndian(UInt16.self, at: 18)!
        guard machine == machineX86_64 else { throw fail("ELF for machine \(machine), not x86_64 (62)") }
        guard header.count >= 64 else { throw fail("too short for an ELF header") }
        let entry = header.littleEndian(UInt64.self, at: 24)!
        let headerOffset = header.littleEndian(UInt64.self, at: 32)!
        let headerSize = Int(header.littleEndian(UInt16.self, at: 54)!)
        let headerCount = Int(header.littleEndian(UInt16.self, at: 56)!)
        guard headerSize >= 56, headerCount > 0 else { throw fail("no program headers") }
        guard headerOffset < UInt64(image.count),
              UInt64(headerSize * headerCount) <= UInt64(image.count) - headerOffset
        else { throw fail("program headers lie past the end of the file (truncated?)") }
        let headers = try image.bytes(at: Int(headerOffset), count: headerSize * headerCount)

        var segments: [Segment] = []
        var pvhEntry: UInt64?
        for index in 0..<headerCount {
            let base = index * headerSize
            let type = headers.littleEndian(UInt32.self, at: base)!
            let offset = headers.littleEndian(UInt64.self, at: base + 8)!
            let virtual = headers.littleEndian(UInt64.self, at: base + 16)!
            let physical = headers.littleEndian(UInt64.self, at: base + 24)!
            let fileSize = headers.littleEndian(UInt64.self, at: base + 32)!
            let memorySize = headers.littleEndian(UInt64.self, at: base + 40)!
            guard type == typeLoad || type == typeNote else { continue }
            guard offset <= UInt64(image.count), fileSize <= UInt64(image.count) - offset else {
                throw fail("segment \(index) lies past the end of the file (truncated?)")
            }
            if type == typeNote {
                // A note larger than this is not a PVH note worth reading.
                if pvhEntry == nil, fileSize <= 1 << 16 { pvhEntry = findPVHEntry(try image.bytes(at: Int(offset), count: Int(fileSize))[...]) }
                continue
            }
            guard fileSize <= memorySize else { throw fail("segment \(index) has more file bytes than memory bytes") }
            guard memorySize > 0 else { continue }
            guard physical >= MemoryMap.kernelLoad.rawValue else {
                throw fail("segment \(index) at 0x\(String(physical, radix: 16)) overlaps the boot area below 1 MiB")
            }
            guard memorySize <= Int.max, memory.contains(GuestAddress(physical), length: Int(memorySize)) else {
                throw fail("segment \(index) (0x\(String(physical, radix: 16)), \(memorySize) bytes) lies outside guest RAM; give the guest more memory")
            }
            segments.append(Segment(offset: Int(offset), fileSize: Int(fileSize), physical: physical, virtual: virtual, memorySize: memorySize))
        }
        guard !segments.isEmpty else { throw fail("no loadable segment") }
        let sorted = segments.sorted { $0.physical < $1.physical }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.physical + previous.memorySize > next.physical {
            throw fail("segments at 0x\(String(previous.physical, radix: 16)) and 0x\(String(next.physical, radix: 16)) overlap")
        }

        for segment in segments {
            let destination: UnsafeMutableRawBufferPointer
            do {
                destination = try memory.slice(at: GuestAddress(segment.physical), count: segment.fileSize)
                let bss = segment.memorySize - UInt64(segment.fileSize)
                if bss > 0 {
                    try memory.zero(at: GuestAddress(segment.physical + UInt64(segment.fileSize)), count: Int(bss))
                }
            } catch {
                throw fail(error.description)
            }
            try image.copy(from: segment.offset, to: destination)
        }

        let end = GuestAddress(sorted.map { $0.physical + $0.memorySize }.max()!)
        if let pvhEntry {
            guard memory.contains(GuestAddress(pvhEntry)) else { throw fail("the PVH entry 0x\(String(pvhEntry, radix: 16)) is outside guest RAM") }
            return LoadedKernel(entry: .pvh(GuestAddress(pvhEntry)), end: end, commandLineLimit: MemoryMap.commandLineMaxSize - 1,
                                initrdAddressMax: nil, setupHeader: nil)
        }
        // e_entry may be virtual (vmlinux links at 0xffffffff81000000); find its physical address.
        let physicalEntry = segments.first { entry >= $0.virtual && entry - $0.virtual < $0.memorySize }
            .map { $0.physical + (entry - $0.virtual) } ?? entry
        guard memory.contains(GuestAddress(physicalEntry)) else {
            throw fail("the entry point 0x\(String(entry, radix: 16)) is outside the loaded segments")
        }
        return LoadedKernel(entry: .linux64(GuestAddress(physicalEntry)), end: end, commandLineLimit: MemoryMap.commandLineMaxSize - 1,
                            initrdAddressMax: nil, setupHeader: nil)
    }

    /// The entry address in a Xen PHYS32_ENTRY note, among the notes in `notes`.
    static func findPVHEntry(_ notes: ArraySlice<UInt8>) -> UInt64? {
        let bytes = Array(notes)
        var offset = 0
        while offset + 12 <= bytes.count {
            let nameSize = Int(bytes.littleEndian(UInt32.self, at: offset)!)
            let descriptionSize = Int(bytes.littleEndian(UInt32.self, at: offset + 4)!)
            let type = bytes.littleEndian(UInt32.self, at: offset + 8)!
            let nameStart = offset + 12
            let descriptionStart = nameStart + (nameSize + 3) & ~3
            guard nameSize <= bytes.count, descriptionSize <= bytes.count, descriptionStart + descriptionSize <= bytes.count else { return nil }
            let name = bytes[nameStart..<(nameStart + nameSize)]
            if type == xenPhys32Entry, name.starts(with: [0x58, 0x65, 0x6e]) {
                // Linux writes the address as a pointer-sized value; older notes use 32 bits.
                if descriptionSize >= 8 { return bytes.littleEndian(UInt64.self, at: descriptionStart) }
                if descriptionSize >= 4 { return bytes.littleEndian(UInt32.self, at: descriptionStart).map(UInt64.init) }
            }
            offset = descriptionStart + (descriptionSize + 3) & ~3
        }
        return nil
    }
}
