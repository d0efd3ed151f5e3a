// libFuzzer target: the ELF loader, PVH note included.
let memory = try! GuestMemory(size: 4 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? ELFLoader.load(image, file: "fuzz", into: memory)
    return 0
}
