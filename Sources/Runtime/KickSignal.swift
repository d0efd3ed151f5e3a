import CLinux
import Glibc
import Synchronization

/// The real-time signal that breaks a vCPU thread out of KVM_RUN or a blocking write
/// (its handler does nothing; the interrupted call returns EINTR). Installed while at
/// least one VM runs in the process and the previous handler put back after the last.
enum KickSignal {
    static let number = clinux_sigrtmin()

    private struct Installation {
        var users = 0
        var previous = sigaction()
    }

    private static let installation = Mutex(Installation())

    static func acquire() {
        installation.withLock { installation in
            installation.users += 1
            guard installation.users == 1 else { return }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in }
            sigemptyset(&action.sa_mask)
            // No SA_RESTART: the interrupted call must return so its loop can see the stop.
            action.sa_flags = 0
            sigaction(number, &action, &installation.previous)
        }
    }

    static func release() {
        installation.withLock { installation in
            installation.users -= 1
            guard installation.users == 0 else { return }
            sigaction(number, &installation.previous, nil)
        }
    }
}
