// libFuzzer target: the kernel command-line builder.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let split = bytes.firstIndex(of: 0x0a) ?? bytes.count
    var line = KernelCommandLine(String(decoding: bytes[..<split], as: UTF8.self))
    let extra = String(decoding: bytes[min(split + 1, bytes.count)...], as: UTF8.self)
    line.insertKernelParameters(extra.split(separator: " ").map(String.init))
    line.append(extra)
    _ = try? line.bytes(limit: Int(size % 4096))
    return 0
}
