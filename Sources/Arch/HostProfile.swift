import Glibc

/// What the host's KVM can run, chosen once by detection. On a host whose KVM
/// emulates all guest kernel code in software (kvm_pvm, no VT-x/AMD-V), some
/// instructions are not emulated, and a guest kernel must keep off the features
/// that use them. On a hardware-virtualization host nothing changes.
public enum HostProfile: Sendable, Equatable {
    case hardwareVirtualization
    case softwareEmulation

    /// Detected from the CPU flags and the loaded KVM module.
    public static let current: HostProfile = detect()

    static func detect() -> HostProfile {
        if access("/sys/module/kvm_pvm", F_OK) == 0 { return .softwareEmulation }
        return cpuFlagsIncludeVirtualization() ? .hardwareVirtualization : .softwareEmulation
    }

    private static func cpuFlagsIncludeVirtualization() -> Bool {
        guard let file = fopen("/proc/cpuinfo", "r") else { return true }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { continue }
            let text = String(cString: line)
            if text.hasPrefix("flags") {
                let flags = text.split { $0 == " " || $0 == "\t" || $0 == "\n" }
                return flags.contains("vmx") || flags.contains("svm")
            }
        }
        return true
    }

    /// Kernel parameters that keep a Linux guest off the instructions this host cannot
    /// run. Hiding the features in CPUID would be cleaner, but KVM on kvm_pvm answers
    /// CPUID from the host whatever KVM_SET_CPUID2 said (measured), so the guest
    /// kernel is told instead. Nothing on a hardware-virtualization host.
    public var kernelParameters: [String] {
        switch self {
        case .hardwareVirtualization: return []
        case .softwareEmulation: return ["clearcpuid=xsave,cx16,smap,popcnt"]
        }
    }

    /// Kernel parameters for a guest that may be snapshotted (it has a control socket).
    /// Here the guest reads the host's TSC, which KVM cannot offset, so a guest that keeps
    /// time by the TSC finds it jumped by the time between snapshot and restore and, with
    /// a periodic tick, replays every tick it missed: 15 s of emulated kernel time after
    /// 2 minutes (measured). The kvmclock is saved and restored with the VM instead.
    /// Nothing on a hardware-virtualization host, where the TSC is restored.
    public var snapshotKernelParameters: [String] {
        switch self {
        case .hardwareVirtualization: return []
        case .softwareEmulation: return ["clocksource=kvm-clock"]
        }
    }

    /// KVM paravirtual features (CPUID 0x40000001 EAX bits) a guest must not use here.
    /// PV IPIs and PV yield are hypercalls, which an emulating host does not deliver:
    /// an SMP Linux guest hangs bringing up its second CPU with them (measured).
    public var hiddenParavirtualFeatures: UInt32 {
        switch self {
        case .hardwareVirtualization: return 0
        case .softwareEmulation: return (1 << 11) | (1 << 13) // KVM_FEATURE_PV_SEND_IPI, KVM_FEATURE_PV_SCHED_YIELD
        }
    }

    /// One line for users: why guests may be slow or stop on some instructions.
    public var explanation: String {
        switch self {
        case .hardwareVirtualization:
            return "this host has hardware virtualization"
        case .softwareEmulation:
            return "this host has no hardware virtualization (no vmx/svm): KVM emulates every guest kernel instruction in software and lacks some instructions"
        }
    }
}
