import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with a clean signal mask and default signal handlers.
///
/// Foundation's `Process` hands the child the spawning thread's blocked-signal mask; a thread of
/// the Swift runtime blocks almost every signal, so a server started that way ignores SIGTERM
/// and can never be stopped gracefully. Servers Tessera starts (the demo's Redis, test
/// servers) go through here instead, and are stopped by their PID.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// Whether the child was reaped (waitpid), so that its PID is never signalled once reused.
    private let exited = Mutex(false)

    public init(_ executable: String, _ arguments: [String], output: String? = nil) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let log = output ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var child: pid_t = 0
        let status = posix_spawnp(&child, executable, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "cannot start \(executable): \(String(cString: strerror(status)))"])
        }
        pid = child
    }

    public var isRunning: Bool {
        exited.withLock { exited in
            guard !exited else { return false }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { exited = true }
            return !exited
        }
    }

    public func signal(_ signal: Int32) {
        if isRunning { kill(pid, signal) }
    }

    /// SIGTERM, then SIGKILL if the process has not exited after `grace` seconds; reaps it.
    public func stop(grace: Double = 5) {
        guard isRunning else { return }
        kill(pid, SIGCONT)
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning {
            kill(pid, SIGKILL)
            exited.withLock { exited in
                var status: Int32 = 0
                waitpid(pid, &status, 0)
                exited = true
            }
        }
    }

    deinit { stop() }
}

/// A `redis-server` on a free loopback port, with no persistence, stopped by its PID.
public final class RedisServerProcess: Sendable {
    public let port: Int32
    public let directory: String
    private let executable: String
    /// The running server; replaced by `restart()`.
    private let current: Mutex<ChildProcess>
    private var child: ChildProcess { current.withLock { $0 } }

    public init(directory: String, executable: String = "redis-server") throws {
        self.directory = directory
        self.executable = executable
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for _ in 0..<3 {
            let port = Self.freePort()
            let child = try Self.launch(executable, port: port, directory: directory)
            if Self.waitListening(port, child) {
                self.port = port
                current = Mutex(child)
                return
            }
            child.stop()
        }
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "redis-server did not start; see \(directory)/redis.log (install it with apt-get install redis-server)"])
    }

    private static func launch(_ executable: String, port: Int32, directory: String) throws -> ChildProcess {
        try ChildProcess(executable, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                      "--dir", directory], output: "\(directory)/redis.log")
    }

    private static func waitListening(_ port: Int32, _ child: ChildProcess) -> Bool {
        for _ in 0..<200 where child.isRunning && !listening(port) { usleep(25_000) }
        return listening(port)
    }

    public var url: String { "redis://127.0.0.1:\(port)" }
    public var pid: pid_t { child.pid }

    /// SIGSTOP / SIGCONT: a hung server, for outage tests.
    public func pause() { child.signal(SIGSTOP) }
    public func resume() { child.signal(SIGCONT) }
    public func stop() { child.stop() }

    /// Stops the server after it saved its data to its directory (`SHUTDOWN SAVE`), so that
    /// `restart()` brings the same data back on the same port: an outage, not a data loss.
    public func shutdownSaving() throws {
        let fd = Self.connectLoopback(port)
        defer { if fd >= 0 { close(fd) } }
        let command = Array("SHUTDOWN SAVE\r\n".utf8)
        guard fd >= 0, write(fd, command, command.count) == command.count else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "cannot send SHUTDOWN to redis-server on port \(port)"])
        }
        let deadline = Date().addingTimeInterval(10)
        while child.isRunning && Date() < deadline { usleep(20_000) }
        guard !child.isRunning else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "redis-server did not shut down"]) }
    }

    /// Starts the server again on its port, loading what `shutdownSaving` saved.
    public func restart() throws {
        child.stop()
        let next = try Self.launch(executable, port: port, directory: directory)
        guard Self.waitListening(port, next) else {
            next.stop()
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "redis-server did not restart on port \(port); see \(directory)/redis.log"])
        }
        current.withLock { $0 = next }
    }

    /// Stops the server and starts it again on its port with no data: Redis lost everything.
    public func restartEmpty() throws {
        child.stop()
        try? FileManager.default.removeItem(atPath: "\(directory)/dump.rdb")
        try restart()
    }

    public static func freePort() -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int32(UInt16(bigEndian: addr.sin_port))
    }

    public static func listening(_ port: Int32) -> Bool {
        let fd = connectLoopback(port)
        if fd >= 0 { close(fd) }
        return fd >= 0
    }

    /// A socket connected to 127.0.0.1:`port`, or -1.
    static func connectLoopback(_ port: Int32) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else {
            close(fd)
            return -1
        }
        return fd
    }
}
