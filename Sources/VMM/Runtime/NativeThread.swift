import Glibc

/// A POSIX thread for work that blocks in the kernel (KVM_RUN), kept off Swift
/// concurrency's cooperative pool.
final class NativeThread: @unchecked Sendable {
    private var handle = pthread_t()
    private var joined = false

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    init(_ body: @escaping @Sendable () -> Void) throws(KVMError) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let result = pthread_create(&handle, nil, { context in
            let body = Unmanaged<Body>.fromOpaque(context!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        if result != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
            throw .systemCallFailed(call: "pthread_create", errno: .init(rawValue: result))
        }
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
