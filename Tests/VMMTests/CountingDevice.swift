@testable import Arch
@testable import Devices
import Glibc
@testable import KVM
@testable import Memory
@testable import Runtime
import Synchronization
import Testing
import X86

/// A port device that answers reads with a counter and records writes.
final class CountingDevice: BusDevice, @unchecked Sendable {
    var written: [UInt8] = []
    var next: UInt8 = 0x10
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices {
            data[index] = next
            next += 1
        }
    }
    func write(offset: UInt64, data: UnsafeRawBufferPointer) { written += data }
}
