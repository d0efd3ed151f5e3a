import Glibc
import VMM

/// A thread that does under a seccomp filter what glibc does behind microvm's back: it
/// grows a thread arena, frees it (glibc then shrinks the arena's heap, and the first
/// time reads /proc/sys/vm/overcommit_memory to learn how), and ends. A call the filter
/// refuses ends the process with status 159 and a line naming the call.
final class SeccompExit {
    /// The filters of a vCPU thread and of the event loop, each without and with the
    /// files of its own it may open (shares, snapshots).
    enum Filter: String {
        case vcpu
        case vcpuShares = "vcpu-shares"
        case loop
        case loopControl = "loop-control"

        func install() throws(SeccompFilter.Error) {
            switch self {
            case .vcpu: try SeccompFilter.install(for: .vcpu)
            case .vcpuShares: try SeccompFilter.install(for: .vcpu, sharing: true)
            case .loop: try SeccompFilter.install(for: .eventLoop)
            case .loopControl: try SeccompFilter.install(for: .eventLoop, control: true)
            }
        }
    }

    let filter: Filter
    var installed = false

    private init(_ filter: Filter) {
        self.filter = filter
    }

    /// Whether the thread started and installed its filter.
    static func run(_ filter: Filter) -> Bool {
        let probe = SeccompExit(filter)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(probe).toOpaque()
        guard pthread_create(&thread, nil, { context in
            Unmanaged<SeccompExit>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context) == 0 else { return false }
        pthread_join(thread, nil)
        return probe.installed
    }

    private func body() {
        guard (try? filter.install()) != nil else { return }
        installed = true
        // 2 MiB of small blocks, far above glibc's trim threshold (128 KiB). Freed oldest
        // first: the first few stay in the thread's cache, the rest merge into the top
        // of the heap, which glibc then gives back.
        var blocks: [UnsafeMutableRawPointer?] = []
        blocks.reserveCapacity(4096)
        for _ in 0..<4096 { blocks.append(malloc(512)) }
        for block in blocks { free(block) }
    }
}
