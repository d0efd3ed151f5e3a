import Foundation
import Testing

/// The images scripts/build-guest leaves in its cache, for tests that boot them.
enum GuestImages {
    static let cache: URL = {
        if let path = ProcessInfo.processInfo.environment["MICROVM_CACHE"] { return URL(fileURLWithPath: path) }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/microvm")
    }()

    static let testGuestELF = cache.appendingPathComponent("test-guest/test-guest.elf").path
    static let testGuestBzImage = cache.appendingPathComponent("test-guest/test-guest.bzImage").path
    static let linuxBzImage = cache.appendingPathComponent("linux/bzImage").path
    static let linuxELF = cache.appendingPathComponent("linux/vmlinux").path
    static let initrd = cache.appendingPathComponent("initrd/initrd.cpio").path

    static let rootfsTree = cache.appendingPathComponent("rootfs/rootfs").path
    static let rootfsImage = cache.appendingPathComponent("rootfs/rootfs.ext4").path

    static let debianKernel = cache.appendingPathComponent("debian/vmlinuz").path
    static let debianInitrd = cache.appendingPathComponent("debian/initrd.cpio").path

    static var haveTestGuest: Bool { [testGuestELF, testGuestBzImage].allSatisfy(FileManager.default.fileExists) }
    static var haveLinux: Bool { [linuxBzImage, linuxELF, initrd].allSatisfy(FileManager.default.fileExists) }

    static var haveRootfs: Bool { haveLinux && [rootfsTree, rootfsImage].allSatisfy(FileManager.default.fileExists) }

    static var haveDebian: Bool { [debianKernel, debianInitrd].allSatisfy(FileManager.default.fileExists) }

    static let missingDebian: Comment = "Debian's cloud kernel is not fetched (scripts/build-guest debian) or /dev/kvm is unavailable"
    static let missingRootfs: Comment = "the minimal Linux or the sample root file system is not built (scripts/build-guest linux initrd rootfs) or /dev/kvm is unavailable"
    static let missingTestGuest: Comment = "the test guest is not built (scripts/build-guest test) or /dev/kvm is unavailable"
    static let missingLinux: Comment = "the minimal Linux is not built (scripts/build-guest linux initrd) or /dev/kvm is unavailable"

    /// Whether guest kernels run on hardware virtualization (vmx/svm, not kvm_pvm's emulator).
    static let hardwareVirtualization: Bool = {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let hardware = cpuinfo.contains(" vmx") || cpuinfo.contains(" svm")
        return hardware && !FileManager.default.fileExists(atPath: "/sys/module/kvm_pvm")
    }()

    /// What microvm adds to the command line on this host, as the guest sees it.
    static let hostParameters: String = hardwareVirtualization ? "" : " clearcpuid=xsave,cx16,smap,popcnt"
}

/// CRC-32 (IEEE), as the test guest prints it.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xffff_ffff
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
    }
    return ~crc
}
