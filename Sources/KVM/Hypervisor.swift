import CKVM
import Glibc
import SystemPackage
import X86

/// The KVM system handle (`/dev/kvm`): API version, capabilities, supported CPUID,
/// and the factory for virtual machines. Owns its file descriptor.
public final class Hypervisor: @unchecked Sendable {
    /// The only KVM API version there has ever been in mainline Linux.
    public static let apiVersion: Int32 = 12

    /// Capabilities microvm cannot run without, checked once at open.
    static let requiredCapabilities: [(Int32, String)] = [
        (KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"),
        (KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"),
        (KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"),
        (KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"),
        (KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"),
    ]

    let fd: FileDescriptor
    /// Size of the per-vCPU shared `kvm_run` area.
    public let vcpuMmapSize: Int

    /// Opens the KVM device and checks the API version and the capabilities microvm relies on.
    public init(path: String = "/dev/kvm") throws(KVMError) {
        do {
            fd = try FileDescriptor.open(FilePath(path), .readWrite, options: [.closeOnExec])
        } catch let error as Errno {
            if error == .noSuchFileOrDirectory { throw .deviceMissing(path: path) }
            throw .deviceUnavailable(path: path, errno: error)
        } catch {
            throw .deviceUnavailable(path: path, errno: .ioError)
        }
        do throws(KVMError) {
            let version = try Ioctl.call(fd, CKVM_GET_API_VERSION, "KVM_GET_API_VERSION", value: 0)
            guard version == Self.apiVersion else {
                throw .unsupportedAPIVersion(found: version, expected: Self.apiVersion)
            }
            for (capability, name) in Self.requiredCapabilities where ckvm_ioctl_value(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(capability)) <= 0 {
                throw .missingCapability(name: name)
            }
            vcpuMmapSize = Int(try Ioctl.call(fd, CKVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE", value: 0))
        } catch {
            try? fd.close()
            throw error
        }
    }

    deinit {
        try? fd.close()
    }

    /// Whether KVM needs an identity-map page placed (Intel without unrestricted guest).
    public var hasIdentityMapAddress: Bool { checkExtension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 }

    /// The value KVM_CHECK_EXTENSION reports for a capability (0 when absent).
    func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_value(fd.rawValue, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    /// The most vCPUs one VM may have: KVM's maximum, kept below 255 because APIC IDs
    /// are 8-bit in the MP table and 255 means broadcast.
    public var maximumVCPUs: Int {
        let maximum = checkExtension(KVM_CAP_MAX_VCPUS)
        let recommended = checkExtension(KVM_CAP_NR_VCPUS)
        return Int(min(254, max(maximum, recommended, 1)))
    }

    /// The CPUID leaves KVM can offer a guest on this host.
    public func supportedCPUID() throws(KVMError) -> [CPUIDEntry] {
        var capacity = 128
        while true {
            let list = KVMList<kvm_cpuid_entry2>(capacity: capacity)
            let result = ckvm_ioctl_ptr(fd.rawValue, CKVM_GET_SUPPORTED_CPUID, list.raw)
            if result == -E2BIG && capacity < 4096 {
                capacity *= 2
                continue
            }
            if result < 0 {
                throw .ioctlFailed(request: "KVM_GET_SUPPORTED_CPUID", errno: Errno(rawValue: -result))
            }
            return list.entries.map(CPUIDEntry.init)
        }
    }

    /// Creates a virtual machine with no memory and no vCPUs.
    public func createVirtualMachine() throws(KVMError) -> VirtualMachine {
        let vmfd = try Ioctl.call(fd, CKVM_CREATE_VM, "KVM_CREATE_VM", value: 0)
        return VirtualMachine(fd: FileDescriptor(rawValue: vmfd), hypervisor: self)
    }
}
