import Glibc
import VMM

/// A plain thread that asks a VM to stop after a delay (outside the main actor, which
/// the top-level code of main.swift belongs to).
final class DelayedStop {
    let vm: MicroVM
    let delay: UInt32

    private init(_ vm: MicroVM, _ delay: UInt32) {
        self.vm = vm
        self.delay = delay
    }

    static func start(_ vm: MicroVM, after microseconds: UInt32) -> pthread_t {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(DelayedStop(vm, microseconds)).toOpaque()
        pthread_create(&thread, nil, { context in
            let stop = Unmanaged<DelayedStop>.fromOpaque(context!).takeRetainedValue()
            usleep(stop.delay)
            stop.vm.requestStop()
            return nil
        }, context)
        return thread
    }
}
