import KVM

/// How often a vCPU came back to userspace, by exit reason. Exits KVM handles itself
/// never reach microvm and are not here (perf's `kvm:kvm_exit` tracepoint counts those).
public struct ExitCounts: Equatable, Sendable {
    public var portIn = 0
    public var portOut = 0
    public var mmioRead = 0
    public var mmioWrite = 0
    /// KVM_RUN interrupted: a kick, a signal, a pause.
    public var interrupted = 0
    /// Halt, shutdown, system events and failures: each ends or idles the vCPU.
    public var other = 0

    public init() {}

    mutating func count(_ exit: VCPUExit) {
        switch exit {
        case .portIn: portIn += 1
        case .portOut: portOut += 1
        case .mmioRead: mmioRead += 1
        case .mmioWrite: mmioWrite += 1
        case .interrupted: interrupted += 1
        case .halt, .shutdown, .systemEvent, .failEntry, .internalError, .unknown: other += 1
        }
    }

    static func + (left: ExitCounts, right: ExitCounts) -> ExitCounts {
        var sum = left
        sum.portIn += right.portIn
        sum.portOut += right.portOut
        sum.mmioRead += right.mmioRead
        sum.mmioWrite += right.mmioWrite
        sum.interrupted += right.interrupted
        sum.other += right.other
        return sum
    }

    var json: String {
        "{\"io_in\":\(portIn),\"io_out\":\(portOut),\"mmio_read\":\(mmioRead),\"mmio_write\":\(mmioWrite),"
            + "\"interrupted\":\(interrupted),\"other\":\(other)}"
    }
}
