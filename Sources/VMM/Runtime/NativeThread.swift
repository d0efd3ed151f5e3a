import Glibc

/// A POSIX thread for work that blocks in the kernel (KVM_RUN), kept off Swift
/// concurrency's cooperative pool.
final class NativeThread: @unchecked Sendable {
    private var handle = pthread_t()
    private var joined = false

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
    }

    /// pthread_setname_np is hidden from Swift's Glibc; this is what it does on Linux.
    private static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = String(name.prefix(15)).withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Sends `signal` to the thread (to break it out of a blocking system call).
    func send(_ signal: Int32) {
        guard !joined else { return }
        pthread_kill(handle, signal)
    }

    func join() {
        guard !joined else { return }
        pthread_join(handle, nil)
        joined = true
    }
}
