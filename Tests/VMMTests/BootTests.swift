@testable import Arch
@testable import Boot
@testable import Memory
import Foundation
import Testing

@Suite struct SetupHeaderTests {
    @Test func parsesTheFieldsALoaderNeeds() throws {
        let header = try SetupHeader(parsing: ImageBuilder.bzImage(initSize: 0x5000), file: "k")
        #expect(header.setupSectors == 1)
        #expect(header.kernelOffset == 0x400)
        #expect(header.version == 0x020f)
        #expect(header.relocatable)
        #expect(header.kernelAlignment == 0x20_0000)
        #expect(header.commandLineSize == 2047)
        #expect(header.initrdAddressMax == 0x7fff_ffff)
        #expect(header.initSize == 0x5000)
        #expect(header.preferredAddress == 0x10_0000)
        // From 0x1f1 to the end of the header, 0x202 + the jump's displacement (0x6a).
        #expect(header.bytes.count == 0x26c - 0x1f1)
    }

    @Test func zeroSetupSectorsMeansFour() throws {
        var image = ImageBuilder.bzImage(payload: [UInt8](repeating: 0, count: 0x1000))
        image[0x1f1] = 0
        #expect(try SetupHeader(parsing: image, file: "k").kernelOffset == 5 * 512)
    }

    @Test func rejectsWhatIsNotABootableBzImage() {
        var noMagic = ImageBuilder.bzImage()
        noMagic[0x202] = 0
        #expect(throws: BootError.invalidKernel(file: "k", reason: "not a bzImage (no \"HdrS\" setup header at 0x202) and not an ELF file")) { try SetupHeader(parsing: noMagic, file: "k") }
        #expect(throws: BootError.invalidKernel(file: "k", reason: "boot protocol 2.04 is older than 2.06, which the 64-bit entry needs")) {
            try SetupHeader(parsing: ImageBuilder.bzImage(version: 0x0204), file: "k")
        }
        #expect(throws: BootError.invalidKernel(file: "k", reason: "the kernel has no 64-bit entry point (XLF_KERNEL_64 is not set)")) {
            try SetupHeader(parsing: ImageBuilder.bzImage(xloadFlags: 0), file: "k")
        }
        #expect(throws: BootError.invalidKernel(file: "k", reason: "the file ends inside its 1 setup sectors (truncated?)")) { try SetupHeader(parsing: Array(ImageBuilder.bzImage().prefix(0x300)), file: "k") }
        #expect(throws: BootError.invalidKernel(file: "k", reason: "the file ends inside its 1 setup sectors (truncated?)")) { try SetupHeader(parsing: Array(ImageBuilder.bzImage().prefix(0x400)), file: "k") }
    }
}

@Suite struct ZeroPageTests {
    @Test func fieldsLandAtTheBootProtocolOffsets() {
        var params = BootParams(header: try! SetupHeader(parsing: ImageBuilder.bzImage(), file: "k").bytes)
        params.setCommandLine(at: 0x20000)
        params.setInitrd(at: GuestAddress(0x1_2345_6000), size: 0x2_0000_1000)
        params.setE820([E820Entry(start: 0, size: 0x9fc00, kind: .ram), E820Entry(start: 0x9fc00, size: 0x60400, kind: .reserved)])
        #expect(params.value(UInt64.self, at: 0x070) == 0, "no RSDP until one is set")
        params.setACPIRootPointer(0xe0000)
        #expect(params.value(UInt64.self, at: 0x070) == 0xe0000)
        #expect(params.value(UInt32.self, at: 0x202) == 0x5372_6448)
        #expect(params.value(UInt8.self, at: 0x210) == 0xff)
        #expect(params.value(UInt32.self, at: 0x228) == 0x20000)
        #expect(params.value(UInt32.self, at: 0x0c8) == 0)
        #expect(params.value(UInt32.self, at: 0x218) == 0x2345_6000)
        #expect(params.value(UInt32.self, at: 0x0c0) == 0x1)
        #expect(params.value(UInt32.self, at: 0x21c) == 0x1000)
        #expect(params.value(UInt32.self, at: 0x0c4) == 0x2)
        #expect(params.value(UInt8.self, at: 0x1e8) == 2)
        #expect(params.value(UInt64.self, at: 0x2d0 + 20) == 0x9fc00)
        #expect(params.value(UInt64.self, at: 0x2d0 + 28) == 0x60400)
        #expect(params.value(UInt32.self, at: 0x2d0 + 36) == 2)
        #expect(params.bytes.count == 4096)
    }

    @Test func elfKernelsGetASyntheticHeader() {
        let params = BootParams()
        #expect(params.value(UInt16.self, at: 0x1fe) == 0xaa55)
        #expect(params.value(UInt32.self, at: 0x202) == 0x5372_6448)
        #expect(params.value(UInt8.self, at: 0x210) == 0xff)
    }
}

@Suite struct E820Tests {
    @Test func ramBelowTheGap() throws {
        let memory = try GuestMemory(size: 256 << 20)
        #expect(E820Entry.map(for: memory) == [
            E820Entry(start: 0, size: 0x9fc00, kind: .ram),
            E820Entry(start: 0x9fc00, size: 0x100000 - 0x9fc00, kind: .reserved),
            E820Entry(start: 0x100000, size: (256 << 20) - 0x100000, kind: .ram),
        ])
    }

    @Test func ramAboveTheGapContinuesAtFourGiB() {
        let regions = MemoryMap.ramRegions(size: 4 << 30)
        let memory = try! GuestMemory(layout: regions)
        let map = E820Entry.map(for: memory)
        #expect(map.count == 4)
        #expect(map[2] == E820Entry(start: 0x100000, size: 0xd000_0000 - 0x100000, kind: .ram))
        #expect(map[3] == E820Entry(start: 0x1_0000_0000, size: (4 << 30) - 0xd000_0000, kind: .ram))
    }
}

@Suite struct KernelCommandLineTests {
    @Test func appendsWithSpaces() {
        var line = KernelCommandLine()
        line.append("console=ttyS0")
        line.append("")
        line.append("virtio_mmio.device=4K@0xd0000000:5")
        #expect(line.text == "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5")
    }

    @Test func enforcesTheKernelsLimit() throws {
        #expect(try KernelCommandLine("abc").bytes(limit: 3) == [0x61, 0x62, 0x63, 0])
        #expect(throws: BootError.invalidCommandLine(reason: "4 bytes is longer than the kernel's limit of 3")) {
            try KernelCommandLine("abcd").bytes(limit: 3)
        }
        #expect(throws: BootError.invalidCommandLine(reason: "it contains a NUL byte")) {
            try KernelCommandLine("a\0b").bytes(limit: 100)
        }
    }

    @Test func hostParametersGoBeforeTheInitArguments() {
        var line = KernelCommandLine("console=ttyS0 -- echo  hi")
        line.insertKernelParameters(["a=1", "b"])
        #expect(line.text == "console=ttyS0 a=1 b -- echo hi")
        var plain = KernelCommandLine("console=ttyS0")
        plain.insertKernelParameters(HostProfile.softwareEmulation.kernelParameters)
        #expect(plain.text == "console=ttyS0 clearcpuid=xsave,cx16,smap,popcnt")
        var untouched = KernelCommandLine("console=ttyS0 --")
        untouched.insertKernelParameters(HostProfile.hardwareVirtualization.kernelParameters)
        #expect(untouched.text == "console=ttyS0 --")
    }
}

@Suite struct LoaderTests {
    @Test func bzImageGoesToOneMiBAndEntersAt0x200() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let payload = (0..<0x800).map { UInt8($0 & 0xff) }
        let kernel = try BzImageLoader.load(ImageBuilder.bzImage(payload: payload, initSize: 0x4000), file: "k", into: memory)
        #expect(kernel.entry == .linux64(0x100200))
        #expect(kernel.end == 0x104000)
        #expect(try memory.read(at: 0x100000, count: payload.count) == payload)
        #expect(kernel.commandLineLimit == 2047)
    }

    @Test func bzImageLargerThanRAMIsRefused() throws {
        let memory = try GuestMemory(size: 2 << 20)
        #expect(throws: BootError.invalidKernel(file: "k", reason: "needs 4096 KiB of RAM from 1 MiB, more than the guest has; give it more memory")) {
            try BzImageLoader.load(ImageBuilder.bzImage(initSize: 4 << 20), file: "k", into: memory)
        }
    }

    /// From files, the kernel's segments and the initrd are read straight into guest memory.
    @Test func kernelAndInitrdFilesLoadStraightIntoGuestMemory() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let image = ImageBuilder.elf(segments: [.init(physical: 0x100000, data: [9, 8, 7, 6])], entry: 0x100000)
        let initrd = (0..<9_998).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("microvm-loader-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let kernelPath = directory.appendingPathComponent("vmlinux").path
        let initrdPath = directory.appendingPathComponent("initrd").path
        try Data(image).write(to: URL(fileURLWithPath: kernelPath))
        try Data(initrd).write(to: URL(fileURLWithPath: initrdPath))
        // A second archive follows at the next 4-byte boundary, where Linux looks for it.
        let appended: [UInt8] = [1, 2, 3, 4, 5]
        let appendedPath = directory.appendingPathComponent("appended").path
        try Data(appended).write(to: URL(fileURLWithPath: appendedPath))
        let entry = try KernelLoader.load(kernel: kernelPath, initrds: [initrdPath, appendedPath], commandLine: KernelCommandLine("x"), into: memory)
        #expect(entry == .linux64(0x100000))
        #expect(try memory.read(at: 0x100000, count: 4) == [9, 8, 7, 6])
        let params = try memory.read(at: MemoryMap.zeroPage, count: 0x1000)
        let address = UInt64(params.littleEndian(UInt32.self, at: 0x218)!)
        #expect(params.littleEndian(UInt32.self, at: 0x21c) == UInt32(10_000 + 5), "9,998 bytes, 2 of padding, 5")
        #expect(try memory.read(at: GuestAddress(address), count: initrd.count) == initrd)
        #expect(try memory.read(at: GuestAddress(address + 9_998), count: 2) == [0, 0])
        #expect(try memory.read(at: GuestAddress(address + 10_000), count: 5) == appended)
        // A program header table past the end of the file is refused without reading it.
        var truncated = image
        ImageBuilder.put(UInt64(1 << 20), at: 32, in: &truncated)
        try Data(truncated).write(to: URL(fileURLWithPath: kernelPath))
        #expect(throws: BootError.invalidKernel(file: kernelPath, reason: "program headers lie past the end of the file (truncated?)")) {
            try KernelLoader.load(kernel: kernelPath, initrds: [], commandLine: KernelCommandLine("x"), into: memory)
        }
    }

    @Test func elfSegmentsLoadAtPhysicalAddressesWithBSSZeroed() throws {
        let memory = try GuestMemory(size: 16 << 20)
        try memory.write([UInt8](repeating: 0xaa, count: 16), at: 0x200004)
        let image = ImageBuilder.elf(segments: [
            .init(physical: 0x100000, virtual: 0xffff_ffff_8100_0000, data: [1, 2, 3, 4]),
            .init(physical: 0x200000, data: [5, 6, 7, 8], memorySize: 0x20),
        ], entry: 0xffff_ffff_8100_0002)
        let kernel = try ELFLoader.load(image, file: "k", into: memory)
        #expect(kernel.entry == .linux64(0x100002))
        #expect(kernel.end == 0x200020)
        #expect(try memory.read(at: 0x100000, count: 4) == [1, 2, 3, 4])
        #expect(try memory.read(at: 0x200000, count: 8) == [5, 6, 7, 8, 0, 0, 0, 0])
        #expect(try memory.read(at: 0x200004, count: 16).allSatisfy { $0 == 0 })
    }

    @Test func pvhNoteSelectsThePVHEntry() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let image = ImageBuilder.elf(segments: [
            .init(physical: 0x100000, data: [0x90]),
            .init(type: 4, physical: 0, data: ImageBuilder.pvhNote(entry: 0x100040)),
        ])
        #expect(try ELFLoader.load(image, file: "k", into: memory).entry == .pvh(0x100040))
    }

    @Test func malformedELFFilesAreRefusedWithTheReason() throws {
        let memory = try GuestMemory(size: 16 << 20)
        let good = ImageBuilder.elf(segments: [.init(physical: 0x100000, data: [1, 2, 3, 4])])
        func reason(_ image: [UInt8]) -> String {
            do {
                _ = try ELFLoader.load(image, file: "vmlinux", into: memory)
                return "loaded"
            } catch {
                return error.description
            }
        }
        #expect(reason(Array(good.prefix(40))) == "kernel vmlinux: too short for an ELF header")
        #expect(reason(Array(good.prefix(10))) == "kernel vmlinux: too short for an ELF header")
        #expect(reason(Array(good.prefix(100))) == "kernel vmlinux: program headers lie past the end of the file (truncated?)")
        #expect(reason(Array(good.dropLast(2))) == "kernel vmlinux: segment 0 lies past the end of the file (truncated?)")
        #expect(reason(ImageBuilder.elf(segments: [.init(physical: 0x100000, data: [1])], machine: 3))
            == "kernel vmlinux: ELF for machine 3, not x86_64 (62)")
        #expect(reason(ImageBuilder.elf(segments: [.init(physical: 0x100000, data: [1])], elfClass: 1)).contains("32-bit ELF"))
        #expect(reason(ImageBuilder.elf(segments: [.init(physical: 0x100000, data: [1, 2], memorySize: 0x10),
                                                   .init(physical: 0x100008, data: [3])])).contains("overlap"))
        #expect(reason(ImageBuilder.elf(segments: [.init(physical: 0x7000, data: [1])])).contains("below 1 MiB"))
        #expect(reason(ImageBuilder.elf(segments: [.init(physical: 0x2000000, data: [1])])).contains("outside guest RAM"))
        #expect(reason(ImageBuilder.elf(segments: [.init(physical: 0x100000, data: [1, 2], memorySize: 1)])).contains("more file bytes"))
    }

    @Test func initrdGoesToTheTopOfLowRAMPageAligned() throws {
        let memory = try GuestMemory(size: 64 << 20)
        let kernel = LoadedKernel(entry: .linux64(0x100200), end: 0x200000, commandLineLimit: 2047, initrdAddressMax: 0x7fff_ffff, setupHeader: nil)
        #expect(try KernelLoader.placeInitrd(size: 0x1801, file: "i", kernel: kernel, memory: memory) == GuestAddress((64 << 20) - 0x2000))
        let limited = LoadedKernel(entry: .linux64(0x100200), end: 0x200000, commandLineLimit: 2047, initrdAddressMax: 0x3ff_ffff, setupHeader: nil)
        #expect(try KernelLoader.placeInitrd(size: 0x1000, file: "i", kernel: limited, memory: memory) == GuestAddress(0x400_0000 - 0x1000))
        #expect(throws: BootError.invalidInitrd(file: "i", reason: "66060288 bytes do not fit in guest RAM between the kernel's end at 0x200000 and 0x4000000; give the guest more memory")) {
            try KernelLoader.placeInitrd(size: 63 << 20, file: "i", kernel: kernel, memory: memory)
        }
    }

    @Test func pvhStartInfoLayout() {
        let info = PVHStartInfo(commandLine: 0x20000, initrd: (GuestAddress(0x3000000), 0x1234),
                                memoryMap: [E820Entry(start: 0, size: 0x9fc00, kind: .ram)], rsdp: 0xe0000)
        let bytes = info.bytes(at: 0x6000)
        func value<T: FixedWidthInteger>(_ type: T.Type, _ offset: Int) -> T { bytes.littleEndian(T.self, at: offset)! }
        #expect(value(UInt32.self, 0) == 0x336e_c578)
        #expect(value(UInt32.self, 4) == 1)
        #expect(value(UInt32.self, 12) == 1)
        #expect(value(UInt64.self, 16) == 0x6040)
        #expect(value(UInt64.self, 24) == 0x20000)
        #expect(value(UInt64.self, 32) == 0xe0000)
        #expect(value(UInt64.self, 40) == 0x6060)
        #expect(value(UInt32.self, 48) == 1)
        #expect(value(UInt64.self, 0x40) == 0x3000000)
        #expect(value(UInt64.self, 0x48) == 0x1234)
        #expect(value(UInt64.self, 0x68) == 0x9fc00)
        #expect(value(UInt32.self, 0x70) == 1)
    }
}
