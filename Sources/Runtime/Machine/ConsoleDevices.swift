import Devices
import Glibc
import Memory

/// The virtio-consoles: the command's streams, the guest's console, the work-order port.
extension MachineBuilder {
    /// hvc0 carries the command's standard input and output, hvc1 its standard error and,
    /// the other way, control lines to the guest's oci-init; a register tells the host
    /// when the guest has opened them.
    func attachCommandStreams() throws {
        let control = self.control
        let standardOutput = ConsoleOutput(fd: STDOUT_FILENO, abandon: { control.isStopping })
        let standardError = ConsoleOutput(fd: STDERR_FILENO, abandon: { control.isStopping })
        let streams = CommandStreams(io: VirtioConsole { standardOutput.write($0) }, errors: VirtioConsole { standardError.write($0) })
        try slots.add(streams.io)
        try slots.add(streams.errors)
        try mmioBus.insert(StreamsReadyRegister { streams.guestReady() },
                           base: MemoryMap.streamsReadyRegister.rawValue, size: StreamsReadyRegister.size)
        self.streams = streams
    }

    func attachConsole() throws {
        let console = VirtioConsole(output: consoleWrite)
        try slots.add(console)
        virtioConsole = console
    }

    func attachWorkOrder() throws {
        let port = WorkOrderPort()
        try slots.add(port.console)
        workOrder = port
    }
}
