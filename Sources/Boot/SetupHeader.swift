import Memory

/// The setup header of a bzImage (Documentation/arch/x86/boot.rst), as far as a
/// 64-bit boot protocol loader needs it.
public struct SetupHeader: Equatable, Sendable {
    /// Offsets from the start of the image (equal to offsets in the zero page).
    enum Offset {
        static let setupSectors = 0x1f1
        static let bootFlag = 0x1fe
        static let jump = 0x200
        static let magic = 0x202
        static let version = 0x206
        static let typeOfLoader = 0x210
        static let loadFlags = 0x211
        static let ramdiskImage = 0x218
        static let ramdiskSize = 0x21c
        static let commandLinePointer = 0x228
        static let initrdAddressMax = 0x22c
        static let kernelAlignment = 0x230
        static let relocatable = 0x234
        static let xloadFlags = 0x236
        static let commandLineSize = 0x238
        static let preferredAddress = 0x258
        static let initSize = 0x260
    }

    static let magic: UInt32 = 0x5372_6448 // "HdrS"
    static let bootFlag: UInt16 = 0xaa55
    /// XLF_KERNEL_64: the kernel has the 64-bit entry point at load address + 0x200.
    static let xlfKernel64: UInt16 = 1 << 0
    static let loadedHigh: UInt8 = 1 << 0

    /// Number of 512-byte setup sectors after the boot sector (0 means 4).
    public let setupSectors: Int
    public let version: UInt16
    public let loadFlags: UInt8
    public let initrdAddressMax: UInt32
    public let kernelAlignment: UInt32
    public let relocatable: Bool
    public let xloadFlags: UInt16
    /// Longest command line the kernel accepts, without the terminating NUL.
    public let commandLineSize: UInt32
    public let preferredAddress: UInt64
    /// Memory the kernel needs from its load address while it sets itself up.
    public let initSize: UInt32
    /// The header bytes from 0x1f1 to its end, copied into the zero page as the protocol asks.
    public let bytes: [UInt8]

    /// Where the protected-mode kernel starts in the file.
    public var kernelOffset: Int { (setupSectors + 1) * 512 }

    /// Parses and validates the header of `image`, read from `file`.
    public init(parsing image: [UInt8], file: String) throws(BootError) {
        func fail(_ reason: String) -> BootError { .invalidKernel(file: file, reason: reason) }
        guard image.count >= 0x264 else { throw fail("\(image.count) bytes is too short for a bzImage setup header") }
        guard image.littleEndian(UInt32.self, at: Offset.magic) == Self.magic else {
            throw fail("not a bzImage (no \"HdrS\" setup header at 0x202) and not an ELF file")
        }
        guard image.littleEndian(UInt16.self, at: Offset.bootFlag) == Self.bootFlag else {
            throw fail("the boot sector flag 0xaa55 is missing")
        }
        version = image.littleEndian(UInt16.self, at: Offset.version)!
        guard version >= 0x0206 else {
            throw fail("boot protocol \(version >> 8).\(String(format2: version & 0xff)) is older than 2.06, which the 64-bit entry needs")
        }
        let sectors = Int(image[Offset.setupSectors])
        setupSectors = sectors == 0 ? 4 : sectors
        loadFlags = image[Offset.loadFlags]
        initrdAddressMax = image.littleEndian(UInt32.self, at: Offset.initrdAddressMax)!
        kernelAlignment = image.littleEndian(UInt32.self, at: Offset.kernelAlignment)!
        relocatable = image[Offset.relocatable] != 0
        xloadFlags = version >= 0x020c ? image.littleEndian(UInt16.self, at: Offset.xloadFlags)! : 0
        commandLineSize = image.littleEndian(UInt32.self, at: Offset.commandLineSize)!
        preferredAddress = version >= 0x020a ? image.littleEndian(UInt64.self, at: Offset.preferredAddress)! : 0x100000
        initSize = version >= 0x020a ? image.littleEndian(UInt32.self, at: Offset.initSize)! : 0
        guard xloadFlags & Self.xlfKernel64 != 0 else {
            throw fail("the kernel has no 64-bit entry point (XLF_KERNEL_64 is not set)")
        }
        guard loadFlags & Self.loadedHigh != 0 else {
            throw fail("a zImage (loaded low) cannot be booted; build a bzImage")
        }
        guard kernelAlignment == 0 || kernelAlignment.nonzeroBitCount == 1 else {
            throw fail("kernel alignment 0x\(String(kernelAlignment, radix: 16)) is not a power of two")
        }
        let headerEnd = Offset.jump + 2 + Int(image[Offset.jump + 1])
        guard headerEnd <= 0x400, headerEnd <= image.count else { throw fail("the setup header is longer than the setup sector") }
        bytes = Array(image[Offset.setupSectors..<headerEnd])
        guard kernelOffset < image.count else {
            throw fail("the file ends inside its \(setupSectors) setup sectors (truncated?)")
        }
    }
}

private extension String {
    /// Two decimal digits, as boot protocol minor versions are written.
    init(format2 value: UInt16) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
