import Memory

/// Puts a kernel, its initrd and command line into guest memory with the boot
/// structures its entry path reads (zero page or PVH start info).
public enum KernelLoader {
    /// Loads `kernel` (bzImage or ELF, told apart by content) and returns how to enter it.
    /// `initrds` are loaded one after the other as one initrd (Linux unpacks concatenated
    /// cpio archives). `rsdp` is where the ACPI tables start, when the VM has them.
    public static func load(kernel kernelPath: String, initrds initrdPaths: [String], commandLine: KernelCommandLine,
                            rsdp: GuestAddress? = nil, into memory: GuestMemory) throws(BootError) -> LoadedKernel.Entry {
        let file = try ImageFile(kernelPath)
        let kernel = try file.startsLikeELF()
            ? try ELFLoader.load(file, into: memory)
            : try BzImageLoader.load(try file.source.bytes(at: 0, count: file.size), file: kernelPath, into: memory)

        let commandLineBytes = try commandLine.bytes(limit: min(kernel.commandLineLimit, MemoryMap.commandLineMaxSize - 1))
        do {
            try memory.write(commandLineBytes, at: MemoryMap.commandLine)
        } catch {
            throw .invalidCommandLine(reason: error.description)
        }

        let initrd = try loadInitrds(initrdPaths, kernel: kernel, memory: memory)

        let e820 = E820Entry.map(for: memory)
        do {
            switch kernel.entry {
            case .linux64:
                var params = BootParams(header: kernel.setupHeader)
                params.setCommandLine(at: MemoryMap.commandLine)
                if let initrd { params.setInitrd(at: initrd.address, size: initrd.size) }
                params.setE820(e820)
                if let rsdp { params.setACPIRootPointer(rsdp) }
                try memory.write(params.bytes, at: MemoryMap.zeroPage)
            case .pvh:
                let info = PVHStartInfo(commandLine: MemoryMap.commandLine, initrd: initrd, memoryMap: e820, rsdp: rsdp)
                try memory.write(info.bytes(at: MemoryMap.pvhStartInfo), at: MemoryMap.pvhStartInfo)
            }
        } catch {
            throw .invalidKernel(file: kernelPath, reason: "guest RAM too small for the boot structures: \(error.description)")
        }
        return kernel.entry
    }

    /// Reads the initrd files straight into guest memory (no copy through an array),
    /// each at a 4-byte boundary, where the kernel looks for the next archive's header;
    /// the initrd's size ends with the last file (the gaps between are zero).
    static func loadInitrds(_ paths: [String], kernel: LoadedKernel, memory: GuestMemory) throws(BootError) -> (address: GuestAddress, size: UInt64)? {
        guard !paths.isEmpty else { return nil }
        var offsets: [Int] = []
        var size = 0
        for path in paths {
            let file = try ImageFile(path)
            offsets.append((size + 3) & ~3)
            size = offsets[offsets.count - 1] + file.size
        }
        let address = try placeInitrd(size: UInt64(size), file: paths[0], kernel: kernel, memory: memory)
        for (path, offset) in zip(paths, offsets) {
            let file = try ImageFile(path)
            guard offset + file.size <= (offsets.first { $0 > offset } ?? size) else {
                throw .invalidInitrd(file: path, reason: "the file grew while it was loaded")
            }
            let destination: UnsafeMutableRawBufferPointer
            do {
                destination = try memory.slice(at: GuestAddress(address.rawValue + UInt64(offset)), count: file.size)
            } catch {
                throw .invalidInitrd(file: path, reason: error.description)
            }
            try file.source.copy(from: 0, to: destination)
        }
        return (address, UInt64(size))
    }

    /// The initrd goes page aligned at the top of RAM below the 32-bit gap and below
    /// the kernel's `initrd_addr_max`, above the kernel.
    static func placeInitrd(size: UInt64, file: String, kernel: LoadedKernel, memory: GuestMemory) throws(BootError) -> GuestAddress {
        let lowEnd = memory.regions.first { $0.start.rawValue <= kernel.end.rawValue && kernel.end.rawValue <= $0.end }?.end ?? 0
        var top = min(lowEnd, MemoryMap.mmioGapStart.rawValue)
        if let limit = kernel.initrdAddressMax { top = min(top, limit + 1) }
        let bottom = kernel.end.alignedUp(to: MemoryMap.pageSize)?.rawValue ?? UInt64.max
        guard size <= top, (top - size) & ~(MemoryMap.pageSize - 1) >= bottom else {
            throw .invalidInitrd(file: file, reason: "\(size) bytes do not fit in guest RAM between the kernel's end at \(kernel.end) and 0x\(String(top, radix: 16)); give the guest more memory")
        }
        return GuestAddress((top - size) & ~(MemoryMap.pageSize - 1))
    }
}
