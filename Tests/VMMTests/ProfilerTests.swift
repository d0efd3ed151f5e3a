@testable import Boot
import Glibc
@testable import Runtime
import Testing
import X86

@Suite struct SymbolTableTests {
    struct ELFSymbol {
        var name: String
        var address: UInt64
        var size: UInt64 = 0
        var function = false
        var section: UInt16 = 1
    }

    /// An ELF file with sections only: null, .text (executable, 0x1000–0x1100), .data
    /// (0x2000–0x2100), the symbol table and its strings.
    static func elf(_ symbols: [ELFSymbol]) -> [UInt8] {
        var strings: [UInt8] = [0]
        var table = [UInt8](repeating: 0, count: 24)
        for symbol in symbols {
            var entry = [UInt8](repeating: 0, count: 24)
            ImageBuilder.put(UInt32(strings.count), at: 0, in: &entry)
            entry[4] = symbol.function ? 2 : 0
            ImageBuilder.put(symbol.section, at: 6, in: &entry)
            ImageBuilder.put(symbol.address, at: 8, in: &entry)
            ImageBuilder.put(symbol.size, at: 16, in: &entry)
            table += entry
            strings += Array(symbol.name.utf8) + [0]
        }
        var image = [UInt8](repeating: 0, count: 64)
        image.replaceSubrange(0..<6, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1])
        let tableOffset = image.count
        image += table
        let stringsOffset = image.count
        image += strings
        let sectionOffset = image.count
        func section(type: UInt32, flags: UInt64 = 0, address: UInt64 = 0, offset: Int = 0, size: Int = 0, link: UInt32 = 0) -> [UInt8] {
            var header = [UInt8](repeating: 0, count: 64)
            ImageBuilder.put(type, at: 4, in: &header)
            ImageBuilder.put(flags, at: 8, in: &header)
            ImageBuilder.put(address, at: 16, in: &header)
            ImageBuilder.put(UInt64(offset), at: 24, in: &header)
            ImageBuilder.put(UInt64(size), at: 32, in: &header)
            ImageBuilder.put(link, at: 40, in: &header)
            return header
        }
        image += section(type: 0)
        image += section(type: 8, flags: 0x6, address: 0x1000, size: 0x100)
        image += section(type: 8, flags: 0x3, address: 0x2000, size: 0x100)
        image += section(type: 2, offset: tableOffset, size: table.count, link: 4)
        image += section(type: 3, offset: stringsOffset, size: strings.count)
        ImageBuilder.put(UInt64(sectionOffset), at: 40, in: &image)
        ImageBuilder.put(UInt16(64), at: 58, in: &image)
        ImageBuilder.put(UInt16(5), at: 60, in: &image)
        return image
    }

    @Test func namesAddressesFromAnELFSymbolTable() throws {
        let table = try SymbolTable.elf(Self.elf([
            ELFSymbol(name: "first", address: 0x1000),
            ELFSymbol(name: "alias", address: 0x1040),
            ELFSymbol(name: "second", address: 0x1040, size: 0x10, function: true),
            ELFSymbol(name: "last", address: 0x10f0),
            ELFSymbol(name: "variable", address: 0x2000, section: 2),
        ]), file: "synthetic")
        #expect(table.names == ["first", "second", "last"])
        func name(_ address: UInt64) -> String? { table.index(of: address).map { table.names[$0] } }
        #expect(name(0xfff) == nil)
        #expect(name(0x1000) == "first")
        #expect(name(0x103f) == "first")
        #expect(name(0x1040) == "second")
        #expect(name(0x104f) == "second")
        // Past a function whose size is known, and before the next symbol: nobody's.
        #expect(name(0x1050) == nil)
        // The last symbol without a size ends with its section.
        #expect(name(0x10ff) == "last")
        #expect(name(0x1100) == nil)
        #expect(name(0x2000) == nil)
    }

    @Test func aStrippedOrTruncatedELFIsRefusedByName() throws {
        var stripped = Self.elf([])
        ImageBuilder.put(UInt16(0), at: 60, in: &stripped)
        #expect(throws: BootError.invalidSymbols(file: "k", reason: "no section headers (stripped?)")) { try SymbolTable.elf(stripped, file: "k") }
        let truncated = Array(Self.elf([ELFSymbol(name: "f", address: 0x1000)]).prefix(200))
        #expect(throws: BootError.invalidSymbols(file: "k", reason: "section headers lie past the end of the file (truncated?)")) {
            try SymbolTable.elf(truncated, file: "k")
        }
    }

    @Test func readsCodeSymbolsFromASystemMap() throws {
        let map = """
            ffffffff81000000 T _stext
            ffffffff81000100 t helper
            ffffffff81000200 D some_data
                             U undefined_in_nm_output
            ffffffff81000300 W weak_function

            """
        let table = try SymbolTable.systemMap(Array(map.utf8), file: "System.map")
        #expect(table.names == ["_stext", "helper", "weak_function"])
        #expect(table.index(of: 0xffff_ffff_8100_01ff).map { table.names[$0] } == "helper")
        // A data symbol is not code, but it does not end the function before it either.
        #expect(table.index(of: 0xffff_ffff_8100_0250).map { table.names[$0] } == "helper")
        #expect(throws: BootError.invalidSymbols(file: "m", reason: "line 2 is not \"ADDRESS TYPE NAME\" (neither ELF nor a System.map)")) {
            try SymbolTable.systemMap(Array("ffffffff81000000 T ok\ngarbage\n".utf8), file: "m")
        }
    }
}

@Suite struct GuestProfilerTests {
    static let table = SymbolTable([.init(address: 0x1000, size: 0x100, name: "busy"),
                                    .init(address: 0xffff_ffff_8100_0000, size: 0x100, name: "kernel_function")])

    @Test func takesOneSampleAtTheFirstExitAfterEachTickAndCountsTheTicksItMissed() throws {
        let profiler = GuestProfiler(rate: 1000, symbols: Self.table)
        let cpu = ScriptedCPU([])
        let sampler = profiler.sampler()
        sampler.begin(at: 0)
        cpu.registerState.rip = 0x1010
        sampler.exitTaken(cpu, now: 500_000)
        sampler.exitTaken(cpu, now: 1_000_000)
        sampler.exitTaken(cpu, now: 1_500_000)
        // Ticks at 2 and 3 ms passed while the thread was away.
        sampler.exitTaken(cpu, now: 4_200_000)
        cpu.registerState.rip = 0xffff_ffff_8100_0010
        sampler.exitTaken(cpu, now: 5_000_000)
        cpu.registerState.rip = 0x40_0000
        cpu.specialState.cs.selector = 0x33
        sampler.exitTaken(cpu, now: 6_000_000)
        // Kernel mode outside the table.
        cpu.specialState.cs.selector = 0x10
        sampler.exitTaken(cpu, now: 7_000_000)
        sampler.stop(now: 7_500_000)

        let profile = profiler.profile
        #expect(profile.rows == [
            .init(name: "busy", mode: .kernel, samples: 2),
            .init(name: GuestProfile.unknownKernel, mode: .kernel, samples: 1),
            .init(name: GuestProfile.userCode, mode: .user, samples: 1),
            .init(name: "kernel_function", mode: .kernel, samples: 1),
        ])
        #expect(profile.missed == 2)
        #expect(profile.vcpus == 1)
        #expect(profile.seconds == 0.0075)
        #expect(profile.samples(in: .user) == 1)
        #expect(profile.folded == "kernel;busy 2\nkernel;\(GuestProfile.unknownKernel) 1\nuser;[user] 1\nkernel;kernel_function 1\n")
        let flat = profile.flat(limit: 2).split(separator: "\n")
        #expect(flat[0] == "microvm guest profile: 5 samples at 1000 Hz on 1 vCPU over 0.01 s; kernel 80.00%, user 20.00%")
        #expect(flat[2] == "samples  percent  function")
        #expect(flat[3] == "      2   40.00%  busy")
        #expect(flat.count == 5)
    }

    @Test func vcpusAddUp() throws {
        let profiler = GuestProfiler(rate: 100, symbols: Self.table)
        let cpu = ScriptedCPU([])
        cpu.registerState.rip = 0x1000
        for _ in 0..<2 {
            let sampler = profiler.sampler()
            sampler.begin(at: 0)
            sampler.exitTaken(cpu, now: 10_000_000)
            sampler.stop(now: 20_000_000)
        }
        #expect(profiler.profile.rows == [.init(name: "busy", mode: .kernel, samples: 2)])
        #expect(profiler.profile.vcpus == 2)
    }

    @Test func aRateOutsideTheRangeIsRefusedBeforeAnythingIsBuilt() throws {
        var configuration = VMConfiguration(kernel: "/nonexistent")
        configuration.profiling = .init(rate: 0, symbols: Self.table)
        #expect(throws: ConfigurationError.profileRate(0)) { try MicroVM(configuration) }
    }
}
