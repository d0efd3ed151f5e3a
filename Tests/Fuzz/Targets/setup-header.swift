// libFuzzer target: bzImage setup-header parsing and loading.
let memory = try! GuestMemory(size: 4 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? BzImageLoader.load(image, file: "fuzz", into: memory)
    return 0
}
