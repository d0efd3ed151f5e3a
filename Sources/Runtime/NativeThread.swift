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

    /// pthread_setname_np is hidden from Swift's Glibc; this is what it does on Linux.
    private static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = String(name.prefix(15)).withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Waits for the thread to end, calling `waiting` every `interval` milliseconds until it does.
    func join(every interval: Int, _ waiting: () -> Void) {
        while clinux_timedjoin(handle, Int32(interval)) == ETIMEDOUT { waiting() }
    }
}
