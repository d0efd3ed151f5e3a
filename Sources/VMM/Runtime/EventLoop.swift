import CKVM
import Glibc

/// The VM's main thread: waits on the console input, the stop signals and the
/// wake-up of the run control, and feeds typed bytes to the guest.
final class EventLoop {
    /// Signals that stop the VM cleanly; they are blocked in every thread and read here.
    static let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    private let control: RunControl
    private let signals: Int32
    private var input: Int32?
    private var escape: ConsoleEscape?
    private var pending: [UInt8] = []
    private let deliver: ([UInt8]) -> Int

    /// `deliver` hands bytes to the guest and returns how many it took; the rest
    /// wait here (and input is not read) until the guest makes room.
    init(control: RunControl, input: Int32?, handleEscape: Bool, deliver: @escaping ([UInt8]) -> Int) throws(KVMError) {
        self.control = control
        self.input = input
        self.escape = handleEscape ? ConsoleEscape() : nil
        self.deliver = deliver
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in Self.stopSignals { sigaddset(&mask, signal) }
        signals = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard signals >= 0 else { throw .systemCallFailed(call: "signalfd", errno: .init(rawValue: errno)) }
    }

    deinit {
        close(signals)
    }

    func run() {
        while !control.isStopping {
            if !pending.isEmpty { flushPending() }
            var descriptors = [
                pollfd(fd: control.wakeup.fd.rawValue, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
            ]
            if let input, pending.isEmpty {
                descriptors.append(pollfd(fd: input, events: Int16(POLLIN), revents: 0))
            }
            // While input waits for the guest to read, look again soon.
            let timeout: Int32 = pending.isEmpty ? -1 : 10
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                control.stop(.vmmError("poll failed: \(String(cString: strerror(errno)))"))
                return
            }
            if descriptors[1].revents != 0 { readSignal() }
            if descriptors.count > 2, descriptors[2].revents != 0 { readInput() }
        }
    }

    private func readSignal() {
        var info = signalfd_siginfo()
        let count = read(signals, &info, MemoryLayout<signalfd_siginfo>.size)
        if count == MemoryLayout<signalfd_siginfo>.size {
            control.stop(.signal(Int32(info.ssi_signo)))
        }
    }

    private func readInput() {
        guard let fd = input else { return }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && (errno == EINTR || errno == EAGAIN) { return }
        guard count > 0 else {
            // End of input (or an input that cannot be read): the guest runs on without it.
            input = nil
            return
        }
        let typed = buffer[0..<count]
        if escape != nil {
            let (forward, quit) = escape!.process(typed)
            pending += forward
            if quit {
                control.stop(.userQuit)
                return
            }
        } else {
            pending += typed
        }
        flushPending()
    }

    private func flushPending() {
        let taken = deliver(pending)
        pending.removeFirst(taken)
    }
}
