// libFuzzer target: the symbol tables --profile reads, ELF and System.map, and lookups in them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let table = ELFLoader.matches(bytes) ? try? SymbolTable.elf(bytes, file: "fuzz") : try? SymbolTable.systemMap(bytes, file: "fuzz")
    if let table {
        for address in table.starts.prefix(64) + [0, UInt64.max] + table.ends.prefix(64) {
            if let index = table.index(of: address) { precondition(table.starts[index] <= address && address < table.ends[index]) }
        }
    }
    return 0
}
