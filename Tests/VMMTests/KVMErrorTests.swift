@testable import KVM
import SystemPackage
import Testing

@Suite struct KVMErrorTests {
    @Test func ioctlFailureNamesTheRequestAndTheErrno() {
        let error = KVMError.ioctlFailed(request: "KVM_CREATE_VM", errno: .permissionDenied)
        #expect(error.description == "KVM_CREATE_VM failed: Permission denied (EACCES)")
    }

    @Test func unknownErrnoStillPrintsItsNumber() {
        let error = KVMError.ioctlFailed(request: "KVM_RUN", errno: Errno(rawValue: 133))
        #expect(error.description.hasSuffix("(errno 133)"))
    }

    @Test func missingDeviceSaysSo() {
        #expect(throws: KVMError.deviceMissing(path: "/nonexistent/kvm")) {
            try Hypervisor(path: "/nonexistent/kvm")
        }
        #expect(KVMError.deviceMissing(path: "/dev/kvm").description.hasPrefix("/dev/kvm does not exist"))
    }

    @Test func permissionProblemGivesAHint() {
        let message = KVMError.deviceUnavailable(path: "/dev/kvm", errno: .permissionDenied).description
        #expect(message.hasPrefix("cannot open /dev/kvm: Permission denied (EACCES); "))
        #expect(message.contains("'kvm'"))
    }

    @Test func aDeviceThatIsNotKVMFailsOnTheVersionQuery() {
        #expect(throws: KVMError.ioctlFailed(request: "KVM_GET_API_VERSION", errno: .inappropriateIOCTLForDevice)) {
            try Hypervisor(path: "/dev/null")
        }
    }

    @Test func aDirectoryCannotBeOpened() {
        #expect(throws: KVMError.deviceUnavailable(path: "/", errno: .isDirectory)) {
            try Hypervisor(path: "/")
        }
    }

    @Test func wrongAPIVersionAndMissingCapabilityAreExplained() {
        #expect(KVMError.unsupportedAPIVersion(found: 11, expected: 12).description
            == "KVM API version 11 is not supported: microvm needs version 12")
        #expect(KVMError.missingCapability(name: "KVM_CAP_IRQCHIP").description
            == "KVM on this host lacks KVM_CAP_IRQCHIP, which microvm needs")
    }
}
