import Devices
import Glibc

extension MicroVM {
    /// Descriptors a jailed VM may open beside those of its shares and vsock connections:
    /// console and control clients, a snapshot's files, and the 9p server's short-lived
    /// directory descriptors.
    static let jailSpareFiles = 64

    /// Enters the jail (`Jail`), between building the VM and `run()`. What the VM still
    /// opens by path is shown: the directory of each socket it serves (a guest connecting to
    /// the host's port P opens PATH_P beside the vsock socket; `ctl snapshot` writes beside
    /// the control socket; each socket is removed when the VM ends). As root with shares,
    /// the capabilities the 9p server needs are kept.
    public func enterJail() throws(Jail.Error) {
        let sockets = [session.consoleSocket, session.controlSocket, session.vsock].compactMap { $0 }
        let directories = sockets.map { path in
            guard let slash = path.lastIndex(of: "/") else { return "." }
            return slash == path.startIndex ? "/" : String(path[..<slash])
        }
        let sharing = needs.contains(.sharing)
        let files = session.shares.count * NinePServer.maximumOpenFiles
            + (needs.contains(.vsock) ? VirtioVsock.maximumConnections : 0) + ControlServer.maximumClients + Self.jailSpareFiles
        try Jail(directories: directories, capabilities: geteuid() == 0 && sharing ? Jail.shareCapabilities : [], moreFiles: files).enter()
    }
}
