// libFuzzer target: a snapshot's device state, as `microvm restore` hands it to each
// device. Byte 0 picks the device (the 16550, or a virtio-mmio transport with a console,
// a disk, a 9p share, a network device, virtio-rng, vsock or a 9p share of two exports
// behind it); the rest is the state. A state that restores is then saved again, and for a
// transport its queues are notified and its registers read, with the same bytes as guest
// memory: restored rings must be walked as safely as live ones.
import Glibc

struct QuietLine: InterruptLine {
    func setLevel(_ high: Bool) {}
}

final class ZeroDisk: BlockBackend, @unchecked Sendable {
    var size: UInt64 { 1 << 20 }
    var isReadOnly: Bool { false }
    func read(into buffers: [UnsafeMutableRawBufferPointer], at offset: UInt64) -> Bool {
        for buffer in buffers { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
        return true
    }
    func write(_ buffers: [UnsafeRawBufferPointer], at offset: UInt64) -> Bool { true }
    func flush() -> Bool { true }
}

/// A network with nothing to say, that takes every frame.
final class SilentNetwork: NetworkBackend, @unchecked Sendable {
    var carriesHeader: Bool { false }
    var descriptor: Int32 { -1 }
    func readyToSend() -> Bool { true }
    func send(_ parts: [UnsafeRawBufferPointer]) -> Bool { true }
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? { 0 }
    func acceptOffloads(_ features: UInt64) {}
}

let silentNetwork = SilentNetwork()
let memory = try! GuestMemory(size: 1 << 20)
let shared: String = {
    var template = Array("/tmp/microvm-fuzz-state-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
    let fd = open(path + "/file", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    close(fd)
    return path
}()
let directory = try! SharedDirectory(path: shared, readOnly: true)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let state = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    try? memory.zero(at: 0, count: 0x10000)
    try? memory.write(UnsafeRawBufferPointer(start: data + 1, count: min(size - 1, 0x10000)), at: 0)
    let device: StatefulDevice
    var transport: VirtioMMIOTransport?
    switch data[0] % 8 {
    case 0:
        device = Serial16550(interrupt: QuietLine()) { _ in }
    case 1:
        transport = VirtioMMIOTransport(device: VirtioConsole { _ in }, memory: memory, interrupt: QuietLine()) { _ in }
        device = transport!
    case 2:
        transport = VirtioMMIOTransport(device: VirtioBlock(backend: ZeroDisk(), identifier: "fuzz"), memory: memory,
                                        interrupt: QuietLine()) { _ in }
        device = transport!
    case 3:
        transport = VirtioMMIOTransport(device: Virtio9P(directory: directory, tag: "fuzz"), memory: memory,
                                        interrupt: QuietLine()) { _ in }
        device = transport!
    case 4:
        transport = VirtioMMIOTransport(device: VirtioNet(backend: silentNetwork, mac: [2, 0, 0, 0, 0, 1]) {}, memory: memory,
                                        interrupt: QuietLine()) { _ in }
        device = transport!
    case 5:
        transport = VirtioMMIOTransport(device: VirtioEntropy { _, _ in }, memory: memory, interrupt: QuietLine()) { _ in }
        device = transport!
    case 6:
        transport = VirtioMMIOTransport(device: try! Virtio9P(tag: "fuzz", exports: ["fuzz": directory, "other": directory]),
                                        memory: memory, interrupt: QuietLine()) { _ in }
        device = transport!
    default:
        transport = VirtioMMIOTransport(device: VirtioVsock(wake: {}), memory: memory, interrupt: QuietLine()) { _ in }
        device = transport!
    }
    var reader = StateReader(state)
    guard (try? device.restoreState(from: &reader)) != nil else { return 0 }
    var writer = StateWriter()
    device.saveState(into: &writer)
    if let transport {
        for queue in 0..<2 {
            withUnsafeBytes(of: UInt32(queue).littleEndian) { transport.write(offset: 0x50, data: $0) }
        }
        var value: UInt32 = 0
        for offset in stride(from: UInt64(0), to: 0x110, by: 4) {
            withUnsafeMutableBytes(of: &value) { transport.read(offset: offset, into: $0) }
        }
    }
    return 0
}
