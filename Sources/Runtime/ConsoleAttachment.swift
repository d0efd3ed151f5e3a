import Glibc

/// The client side of a console socket (`microvm attach`): the terminal talks to the
/// guest's console until the user detaches with Ctrl-A x or the VM goes away.
public enum ConsoleAttachment {
    public enum Ending: Equatable, Sendable {
        /// The user pressed Ctrl-A x; the guest keeps running.
        case detached
        /// The VM closed the console (it stopped, or refused a second client).
        case closed
    }

    /// Connects to `path` and relays until the end. Standard input is put in raw mode
    /// when it is a terminal, and restored.
    public static func run(socketPath path: String) throws(UnixSocket.Error) -> Ending {
        let fd = try UnixSocket.connect(to: path)
        defer { close(fd) }
        let terminal = Terminal(fd: STDIN_FILENO)
        terminal?.makeRaw()
        defer { terminal?.restore() }
        var escape = ConsoleEscape()
        var inputOpen = true
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var descriptors = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if inputOpen { descriptors.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
            guard poll(&descriptors, nfds_t(descriptors.count), -1) >= 0 || errno == EINTR else { return .closed }
            if descriptors[0].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { return .closed }
                buffer.withUnsafeBytes { ConsoleOutput.writeAll(STDOUT_FILENO, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
            if descriptors.count > 1, descriptors[1].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(STDIN_FILENO, $0.baseAddress, $0.count) }
                if count <= 0 {
                    inputOpen = false
                    continue
                }
                var typed = Array(buffer[0..<count])
                if terminal != nil {
                    let (forward, quit) = escape.process(typed)
                    typed = forward
                    if quit {
                        typed.withUnsafeBytes { ConsoleOutput.writeAll(fd, $0) }
                        return .detached
                    }
                }
                typed.withUnsafeBytes { ConsoleOutput.writeAll(fd, $0) }
            }
        }
    }
}
