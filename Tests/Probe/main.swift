// vmm-probe: runs VMs in a process of its own, for tests whose figures other tests
// running beside them must not move.
//   vmm-probe cycles KERNEL WARMUP COUNT   boot the test guest WARMUP times, then COUNT
//       more, and print "fds=A rss_kib=B" after each phase
//   vmm-probe stop KERNEL CPUS DELAY_US    build a VM of CPUS vCPUs that halts, ask it to stop
//       DELAY_US microseconds after run() starts, and exit with its status
//   vmm-probe 9p-fids DIRECTORY            serve DIRECTORY (empty) over 9P, make the deepest path
//       a fid can hold in it, walk every other fid there, and print "fids=N rss_kib=B" before and after
//   vmm-probe seccomp-exit FILTER      on a thread under a seccomp filter (vcpu,
//       vcpu-shares, loop or loop-control), grow a thread arena, free it so that glibc
//       shrinks its heap, and end the thread; exit 0 if the filter let all of it through
import Glibc
import VMM

func residentKiB() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    defer { free(line) }
    while getline(&line, &capacity, file) > 0 {
        let text = String(cString: line!)
        if text.hasPrefix("VmRSS:") { return Int(text.split(separator: " ")[1]) ?? -1 }
    }
    return -1
}

func openDescriptors() -> Int {
    guard let directory = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(directory) }
    var count = -3 // ".", ".." and the directory's own descriptor
    while readdir(directory) != nil { count += 1 }
    return count
}

func fail(_ message: String) -> Never {
    let line = "vmm-probe: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count == 5 || arguments.count == 3 && ["9p-fids", "seccomp-exit"].contains(arguments[1]) else {
    fail("usage: vmm-probe cycles KERNEL WARMUP COUNT | stop KERNEL CPUS DELAY_US | 9p-fids DIRECTORY | seccomp-exit FILTER")
}
let null = open("/dev/null", O_WRONLY | O_CLOEXEC)

switch arguments[1] {
case "cycles":
    guard let warmup = Int(arguments[3]), let count = Int(arguments[4]) else { fail("WARMUP and COUNT are numbers") }
    let configuration = VMConfiguration(kernel: arguments[2], commandLine: KernelCommandLine("leak"),
                                        memorySize: 16 << 20, consoleOutput: null, consoleInput: false)
    func cycles(_ n: Int) {
        for _ in 0..<n {
            do {
                let exit = try MicroVM(configuration).run()
                guard exit == .reset else { fail("a VM ended with \(exit)") }
            } catch {
                fail("\(error)")
            }
        }
        print("fds=\(openDescriptors()) rss_kib=\(residentKiB())")
    }
    cycles(warmup)
    cycles(count)
case "stop":
    guard let cpus = Int(arguments[3]), let delay = UInt32(arguments[4]) else { fail("CPUS and DELAY_US are numbers") }
    let configuration = VMConfiguration(kernel: arguments[2], commandLine: KernelCommandLine("tg.halt"),
                                        memorySize: 16 << 20, vcpuCount: cpus, consoleOutput: null, consoleInput: false)
    do {
        let vm = try MicroVM(configuration)
        let thread = DelayedStop.start(vm, after: delay)
        let exit = vm.run()
        pthread_join(thread, nil)
        exit == .stopRequested ? Glibc.exit(0) : fail("the VM ended with \(exit)")
    } catch {
        fail("\(error)")
    }
case "9p-fids":
    // Names of one letter: the most names, and so the most per-name overhead, a path can hold.
    let depth = (SharedDirectory.maximumPathLength - 2) / 2
    var parent = open(arguments[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    for _ in 0..<depth {
        guard mkdirat(parent, "d", 0o755) == 0 || errno == EEXIST else { fail("mkdir: \(String(cString: strerror(errno)))") }
        let child = openat(parent, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        close(parent)
        parent = child
    }
    close(parent)
    let server: NinePServer
    do {
        server = NinePServer(directory: try SharedDirectory(path: arguments[2], readOnly: true))
    } catch {
        fail("\(error)")
    }
    _ = server.handle(.version(msize: 8192, version: NineP.version))
    _ = server.handle(.attach(fid: 0, authFid: NineP.noFid, user: "", tree: "", numericUser: 0))
    _ = server.handle(.walk(fid: 0, newFid: 1, names: []))
    var walked = 0
    while walked < depth {
        let names = min(16, depth - walked)
        guard case .walk = server.handle(.walk(fid: 1, newFid: 1, names: Array(repeating: "d", count: names))) else { fail("walk") }
        walked += names
    }
    print("fids=\(server.fidCount) rss_kib=\(residentKiB())")
    // Up and down again: each fid gets a path of its own rather than a copy sharing the deep fid's.
    for fid in 2..<UInt32(NinePServer.maximumFids) {
        guard case .walk = server.handle(.walk(fid: 1, newFid: fid, names: ["..", "d"])) else { fail("walk to fid \(fid)") }
    }
    print("fids=\(server.fidCount) rss_kib=\(residentKiB())")
case "seccomp-exit":
    guard let filter = SeccompExit.Filter(rawValue: arguments[2]) else { fail("FILTER is vcpu, vcpu-shares, loop or loop-control") }
    SeccompExit.run(filter) ? exit(0) : fail("the filtered thread could not start or install its filter")
default:
    fail("unknown mode \(arguments[1])")
}
