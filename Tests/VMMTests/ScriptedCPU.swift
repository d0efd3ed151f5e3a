@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

/// A vCPU that replays a script of exits, for the run loop without /dev/kvm.
final class ScriptedCPU: GuestCPU, @unchecked Sendable {
    enum Step {
        case portOut(UInt16, [UInt8], size: Int)
        case portIn(UInt16, size: Int, count: Int)
        case mmioRead(UInt64, Int)
        case exit(VCPUExit)
        case fail(KVMError)
    }

    let id: UInt32 = 0
    private var steps: [Step]
    private(set) var portInData: [[UInt8]] = []
    private(set) var mmioReadData: [[UInt8]] = []
    let immediateExit = Atomic<Bool>(false)
    var registerState = Registers()
    var specialState = SpecialRegisters()
    var translation: [UInt64: GuestAddress] = [:]

    init(_ steps: [Step]) { self.steps = steps }

    func run<Result>(_ handle: (VCPUExit) -> Result) throws(KVMError) -> Result {
        if immediateExit.exchange(false, ordering: .acquiringAndReleasing) || steps.isEmpty { return handle(.interrupted) }
        switch steps.removeFirst() {
        case .portOut(let port, var bytes, let size):
            let count = bytes.count / size
            return bytes.withUnsafeMutableBytes { handle(.portOut(port: port, size: size, count: count, data: UnsafeRawBufferPointer($0))) }
        case .portIn(let port, let size, let count):
            var bytes = [UInt8](repeating: 0, count: size * count)
            let result = bytes.withUnsafeMutableBytes { handle(.portIn(port: port, size: size, count: count, data: $0)) }
            portInData.append(bytes)
            return result
        case .mmioRead(let address, let length):
            var bytes = [UInt8](repeating: 0, count: length)
            let result = bytes.withUnsafeMutableBytes { handle(.mmioRead(address: address, data: $0)) }
            mmioReadData.append(bytes)
            return result
        case .exit(let exit):
            return handle(exit)
        case .fail(let error):
            throw error
        }
    }

    func requestImmediateExit() { immediateExit.store(true, ordering: .releasing) }
    func registers() throws(KVMError) -> Registers { registerState }
    func specialRegisters() throws(KVMError) -> SpecialRegisters { specialState }
    func translate(_ linearAddress: UInt64) throws(KVMError) -> GuestAddress? { translation[linearAddress] }
}
