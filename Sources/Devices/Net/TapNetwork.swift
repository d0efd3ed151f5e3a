import CLinux
import Glibc

/// A network backend on an existing tap device, opened through /dev/net/tun with
/// IFF_NO_PI and IFF_VNET_HDR: each frame carries the 12-byte virtio-net header, so the
/// guest's checksum and segmentation offloads pass through to the host's stack.
public final class TapNetwork: NetworkBackend, @unchecked Sendable {
    public enum Error: Swift.Error, Equatable, CustomStringConvertible {
        case badName(String)
        case cannotOpen(name: String, reason: String)

        public var description: String {
            switch self {
            case .badName(let name): return "'\(name)' is not a network interface name (1 to 15 characters, no '/' or spaces)"
            case .cannotOpen(let name, let reason): return "cannot open the tap device \(name): \(reason)"
            }
        }
    }

    public var carriesHeader: Bool { true }
    public let descriptor: Int32
    public let name: String

    public init(name: String) throws(TapNetwork.Error) {
        let bytes = Array(name.utf8)
        guard (1...15).contains(bytes.count), !bytes.contains(where: { $0 == 0x2f || $0 <= 0x20 }) else { throw .badName(name) }
        // TUNSETIFF creates a missing device when the caller may; only an existing one is wanted.
        guard if_nametoindex(name) != 0 else { throw .cannotOpen(name: name, reason: "no such device (ip tuntap add \(name) mode tap)") }
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(name: name, reason: "/dev/net/tun: \(String(cString: strerror(errno)))") }
        // struct ifreq: the name, then the flags; TUNSETIFF on an existing tap needs no
        // privilege when the device belongs to this user.
        var request = [UInt8](repeating: 0, count: 40)
        request.replaceSubrange(0..<bytes.count, with: bytes)
        let flags = UInt16(CLINUX_IFF_TAP | CLINUX_IFF_NO_PI | CLINUX_IFF_VNET_HDR)
        request[16] = UInt8(flags & 0xff)
        request[17] = UInt8(flags >> 8)
        var headerSize = Int32(VirtioNet.headerLength)
        let attached = request.withUnsafeMutableBytes { clinux_ioctl_ptr(fd, CLINUX_TUNSETIFF, $0.baseAddress) }
        let sized = attached < 0 ? attached : clinux_ioctl_ptr(fd, CLINUX_TUNSETVNETHDRSZ, &headerSize)
        guard sized >= 0 else {
            close(fd)
            let reason = -sized == EPERM ? "not permitted (create it for this user: ip tuntap add NAME mode tap user USER)"
                : String(cString: strerror(-sized))
            throw .cannotOpen(name: name, reason: reason)
        }
        descriptor = fd
        self.name = name
    }

    deinit {
        close(descriptor)
    }

    public func acceptOffloads(_ features: UInt64) {
        var offloads: UInt32 = 0
        if features & VirtioNet.Feature.guestChecksum != 0 {
            offloads |= UInt32(CLINUX_TUN_F_CSUM)
            if features & VirtioNet.Feature.guestTSO4 != 0 { offloads |= UInt32(CLINUX_TUN_F_TSO4) }
            if features & VirtioNet.Feature.guestTSO6 != 0 { offloads |= UInt32(CLINUX_TUN_F_TSO6) }
        }
        _ = clinux_ioctl_value(descriptor, CLINUX_TUNSETOFFLOAD, UInt(offloads))
    }

    public func readyToSend() -> Bool { true }

    public func send(_ parts: [UnsafeRawBufferPointer]) -> Bool {
        let vectors = parts.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        while true {
            let written = writev(descriptor, vectors, Int32(vectors.count))
            if written < 0 && errno == EINTR { continue }
            // A full tap queue drops the frame, as a wire would.
            return written >= 0 || errno == EAGAIN || errno == ENOBUFS
        }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        while true {
            let count = read(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return 0 }
            return nil
        }
    }
}
