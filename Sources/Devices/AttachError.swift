/// Why `attach` refused a host resource for a device built without one (a VM template's
/// device, bound per run).
public enum AttachError: Error, Equatable, CustomStringConvertible {
    /// The device has its backend already: one is bound for the device's lifetime.
    case attached(device: String)
    /// The network device's features were fixed for frames with the virtio-net header
    /// (`deviceCarriesHeader`) or without it, and the backend's frames differ.
    case headerMismatch(deviceCarriesHeader: Bool)

    public var description: String {
        switch self {
        case .attached(let device):
            return "cannot attach to the \(device): it has its backend already"
        case .headerMismatch(true):
            return "cannot attach the network backend: the device was built for frames with the virtio-net header (a tap), and the backend's have none"
        case .headerMismatch(false):
            return "cannot attach the network backend: the device was built for frames without the virtio-net header (passt), and the backend's carry one"
        }
    }
}
