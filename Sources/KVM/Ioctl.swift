import CKVM
import SystemPackage

/// The one place where ioctl results become Swift errors named after the request.
enum Ioctl {
    @discardableResult
    static func call(_ fd: FileDescriptor, _ request: UInt, _ name: String, _ argument: UnsafeMutableRawPointer?) throws(KVMError) -> Int32 {
        let result = ckvm_ioctl_ptr(fd.rawValue, request, argument)
        if result < 0 {
            throw .ioctlFailed(request: name, errno: Errno(rawValue: -result))
        }
        return result
    }

    @discardableResult
    static func call(_ fd: FileDescriptor, _ request: UInt, _ name: String, value: UInt) throws(KVMError) -> Int32 {
        let result = ckvm_ioctl_value(fd.rawValue, request, value)
        if result < 0 {
            throw .ioctlFailed(request: name, errno: Errno(rawValue: -result))
        }
        return result
    }

    /// Passes a typed value by reference, as most KVM ioctls take a struct pointer.
    @discardableResult
    static func call<T>(_ fd: FileDescriptor, _ request: UInt, _ name: String, _ value: inout T) throws(KVMError) -> Int32 {
        let result = withUnsafeMutablePointer(to: &value) { ckvm_ioctl_ptr(fd.rawValue, request, $0) }
        if result < 0 {
            throw .ioctlFailed(request: name, errno: Errno(rawValue: -result))
        }
        return result
    }
}
