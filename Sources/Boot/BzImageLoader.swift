import Memory

/// Loads a bzImage for the 64-bit boot protocol: its protected-mode part goes to
/// 1 MiB and is entered 0x200 bytes in, in long mode.
public enum BzImageLoader {
    public static let loadAddress = MemoryMap.kernelLoad

    public static func load(_ image: [UInt8], file: String, into memory: GuestMemory) throws(BootError) -> LoadedKernel {
        let header = try SetupHeader(parsing: image, file: file)
        let kernel = image[header.kernelOffset...]
        let footprint = max(UInt64(kernel.count), UInt64(header.initSize))
        guard let end = loadAddress.adding(footprint), memory.contains(loadAddress, length: Int(footprint)) else {
            throw .invalidKernel(file: file, reason: "needs \(footprint >> 10) KiB of RAM from 1 MiB, more than the guest has; give it more memory")
        }
        do {
            let destination = try memory.slice(at: loadAddress, count: kernel.count)
            kernel.withUnsafeBytes { destination.copyMemory(from: $0) }
        } catch {
            throw .invalidKernel(file: file, reason: error.description)
        }
        return LoadedKernel(
            entry: .linux64(loadAddress.adding(0x200)!),
            end: end,
            commandLineLimit: header.version >= 0x0206 ? Int(header.commandLineSize) : 255,
            initrdAddressMax: UInt64(header.initrdAddressMax),
            setupHeader: header.bytes
        )
    }
}
