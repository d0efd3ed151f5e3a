import CLinux
import Glibc
import KVM

/// A POSIX thread for work that blocks in the kernel (KVM_RUN), kept off Swift
/// concurrency's cooperative pool. Joined once, by its creator.
final class NativeThread {
    let handle: pthread_t

    private final class Body {
        let name: String
        let run: () -> Void
        init(_ name: String, _ run: @escaping () -> Void) {
            self.name = name
            self.run = run
        }
    }

    /// Starts `body` on a new thread called `name` (at most 15 bytes show in /proc).
    init(name: String, _ body: @escaping @Sendable () -> Void) throws(KVMError) {
        let context = Unmanaged.passRetained(Body(name, body)).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            NativeThread.nameCurrentThread(body.name)
            body.run()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
            throw .systemCallFailed(call: "pthread_create", errno: .init(rawValue: result))
        }
        self.handle = handle
    }

    /// What pthread_setname_np does for the calling thread, which Swift's Glibc hides; prctl
    /// needs no /proc, which a jailed VM process cannot see.
    private static func nameCurrentThread(_ name: String) {
        _ = String(name.prefix(15)).withCString { clinux_prctl(CLINUX_PR_SET_NAME, UInt(bitPattern: $0), 0) }
    }

    /// Waits for the thread to end, calling `waiting` every `interval` milliseconds until it does.
    func join(every interval: Int, _ waiting: () -> Void) {
        while clinux_timedjoin(handle, Int32(interval)) == ETIMEDOUT { waiting() }
    }
}
