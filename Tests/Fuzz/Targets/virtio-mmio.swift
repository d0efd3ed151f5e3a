// libFuzzer target: the virtio-mmio register interface with a console behind it.
// Each 9-byte record: operation, offset (16 bits), width, value (32 bits), and a byte of input.
struct QuietLine: InterruptLine {
    func setLevel(_ high: Bool) {}
}

let memory = try! GuestMemory(size: 1 << 20)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let console = VirtioConsole { _ in }
    let transport = VirtioMMIOTransport(device: console, memory: memory, interrupt: QuietLine()) { _ in }
    var index = 0
    while index + 9 <= size {
        let offset = UInt64(data[index + 1]) | UInt64(data[index + 2]) << 8
        let width = [1, 2, 4, 8][Int(data[index + 3] % 4)]
        var value = UInt64(data[index + 4]) | UInt64(data[index + 5]) << 8 | UInt64(data[index + 6]) << 16 | UInt64(data[index + 7]) << 24
        withUnsafeMutableBytes(of: &value) { bytes in
            let access = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<width])
            switch data[index] % 4 {
            case 0: transport.read(offset: offset % 0x1000, into: access)
            case 1: transport.write(offset: offset % 0x1000, data: UnsafeRawBufferPointer(access))
            case 2: console.receive([data[index + 8]])
            default: try? memory.write([data[index + 8]], at: GuestAddress(offset << 4))
            }
        }
        index += 9
    }
    return 0
}
