import CLinux
import Glibc
import KVM

/// The VM's main thread: waits on the console input (standard input or the console
/// socket), signals, and the run control's wake-up, and feeds typed bytes to the guest.
final class EventLoop {
    /// Signals that stop the VM cleanly; they are blocked in every thread and read here.
    static let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    /// Signals that go to the guest's command when it has its own streams (a container's
    /// `kill`), the stop signals among them; SIGKILL alone then stops the VM.
    static let forwardedSignals: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM, SIGALRM, SIGCONT, SIGTSTP]

    /// Every signal this loop reads: the stop (or forwarded) signals and terminal resizes.
    static func handledSignals(forwarding: Bool) -> [Int32] {
        (forwarding ? forwardedSignals : stopSignals) + [SIGWINCH]
    }

    enum Input {
        case none
        /// Standard input; on a terminal with the Ctrl-A escape.
        case standardInput(escape: Bool)
        case socket(ConsoleSocketServer)
    }

    private let control: RunControl
    private let signals: Int32
    private var input: Input
    private var escape = ConsoleEscape()
    private var pending: [UInt8] = []
    private let deliver: ([UInt8]) -> Int
    private let resize: ((UInt16, UInt16) -> Void)?
    private let controlServer: ControlServer?
    private let devices: DeviceIO
    private let answer: (Result<ControlRequest, JSONObject.ParseError>) -> JSONObject
    private let streams: CommandStreams?
    /// Input ended while some of it still waited for the guest.
    private var endOfInputWaiting = false

    /// `deliver` hands bytes to the guest and returns how many it took; the rest wait
    /// here (and input is not read) until the guest makes room. `resize` gets the
    /// terminal size at start and on every SIGWINCH.
    /// `answer` handles each request on `controlServer`, on this loop's thread. `devices`
    /// is the device work done here: network receive and timers. With `streams`, signals
    /// and the end of input go to the guest's command instead of stopping the VM.
    init(control: RunControl, input: Input, deliver: @escaping ([UInt8]) -> Int,
         resize: ((UInt16, UInt16) -> Void)?, devices: DeviceIO, controlServer: ControlServer? = nil,
         answer: @escaping (Result<ControlRequest, JSONObject.ParseError>) -> JSONObject = { _ in JSONObject() },
         streams: CommandStreams? = nil) throws(KVMError) {
        self.control = control
        self.streams = streams
        self.controlServer = controlServer
        self.devices = devices
        self.answer = answer
        self.input = input
        self.deliver = deliver
        self.resize = resize
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in Self.handledSignals(forwarding: streams != nil) { sigaddset(&mask, signal) }
        signals = signalfd(-1, &mask, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard signals >= 0 else { throw .systemCallFailed(call: "signalfd", errno: .init(rawValue: errno)) }
    }

    deinit {
        close(signals)
    }

    func run() {
        updateSize()
        while !control.isStopping {
            if !pending.isEmpty { flushPending() }
            var descriptors = [
                pollfd(fd: control.wakeup.fd.rawValue, events: Int16(POLLIN), revents: 0),
                pollfd(fd: signals, events: Int16(POLLIN), revents: 0),
            ]
            let readable = pending.isEmpty
            switch input {
            case .none:
                break
            case .standardInput:
                if readable { descriptors.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
            case .socket(let server):
                descriptors.append(pollfd(fd: server.listener, events: Int16(POLLIN), revents: 0))
                if readable, let client = server.client {
                    descriptors.append(pollfd(fd: client, events: Int16(POLLIN), revents: 0))
                }
            }
            let inputCount = descriptors.count
            if let controlServer {
                descriptors.append(pollfd(fd: controlServer.listener, events: Int16(POLLIN), revents: 0))
                for fd in controlServer.clients.keys { descriptors.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            }
            let controlEnd = descriptors.count
            let (deviceDescriptors, deviceTimeout) = devices.pollSet()
            descriptors += deviceDescriptors
            // While input waits for the guest to read, look again soon.
            let inputTimeout: Int32 = pending.isEmpty ? -1 : 10
            let timeout = inputTimeout < 0 ? deviceTimeout : deviceTimeout < 0 ? inputTimeout : min(inputTimeout, deviceTimeout)
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                control.stop(.vmmError("poll failed: \(String(cString: strerror(errno)))"))
                return
            }
            if descriptors[1].revents != 0 { readSignals() }
            for descriptor in descriptors[2..<inputCount] where descriptor.revents != 0 {
                readInput(from: descriptor.fd)
            }
            devices.serve(descriptors[controlEnd...])
            if let controlServer {
                for descriptor in descriptors[inputCount..<controlEnd] where descriptor.revents != 0 && !control.isStopping {
                    if descriptor.fd == controlServer.listener {
                        controlServer.accept()
                    } else {
                        controlServer.read(descriptor.fd, handle: answer)
                    }
                }
            }
        }
    }

    private func readSignals() {
        var info = signalfd_siginfo()
        while read(signals, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            if Int32(info.ssi_signo) == SIGWINCH {
                updateSize()
            } else if let streams {
                streams.forward(signal: Int32(info.ssi_signo))
            } else {
                control.stop(.signal(Int32(info.ssi_signo)))
            }
        }
    }

    private func updateSize() {
        guard let resize, case .standardInput = input, isatty(STDIN_FILENO) == 1 else { return }
        var size = winsize()
        if clinux_ioctl_ptr(STDIN_FILENO, CLINUX_TIOCGWINSZ, &size) == 0, size.ws_col > 0, size.ws_row > 0 {
            resize(size.ws_col, size.ws_row)
        }
    }

    private func readInput(from fd: Int32) {
        switch input {
        case .none:
            return
        case .socket(let server):
            if fd == server.listener {
                server.acceptClient()
            } else if let typed = server.readClient() {
                pending += typed
            }
        case .standardInput(let handleEscape):
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { return }
            guard count > 0 else {
                // End of input (or input that cannot be read): the guest runs on without it,
                // and a command with its own streams reads its end after the input before it.
                input = .none
                endOfInputWaiting = streams != nil
                flushPending()
                return
            }
            guard handleEscape else {
                pending += buffer[0..<count]
                break
            }
            let (forward, quit) = escape.process(buffer[0..<count])
            pending += forward
            if quit {
                control.stop(.userQuit)
                return
            }
        }
        flushPending()
    }

    private func flushPending() {
        let taken = deliver(pending)
        pending.removeFirst(taken)
        if pending.isEmpty && endOfInputWaiting {
            endOfInputWaiting = false
            streams?.endOfInput()
        }
    }
}
