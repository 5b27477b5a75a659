import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TesseraCore

/// The worker as a service: its blocking loop on a thread of its own (with the stack the core
/// needs), stopped by a graceful shutdown (SIGTERM in `tessera run`) or by `stop()`, after which
/// it flushes, checkpoints, commits and leaves the group. `tessera run` runs it in a service
/// group next to the metrics server; the demo and the tests start and join it directly.
public final class WorkerService: Service, Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger
    private let clock: any WallClock
    public let health: WorkerHealth?

    private struct State {
        var started = false
        var progress = WorkerStats()
        var outcome: Result<WorkerStats, any Error>?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())
    private let stopRequest = StopRequest()
    private let finished = DispatchSemaphore(value: 0)

    public init(configuration: WorkerConfiguration, logger: Logger, clock: any WallClock = SystemClock(), health: WorkerHealth? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.health = health
    }

    public convenience init(options: WorkerOptions, logger: Logger, health: WorkerHealth? = nil) throws {
        self.init(configuration: try WorkerConfiguration(options), logger: logger, health: health)
    }

    /// Starts the worker thread (once; later calls do nothing).
    public func start() {
        guard state.withLock({ s in
            defer { s.started = true }
            return !s.started
        }) else { return }
        startThread(named: "tessera-worker", stackSize: 8 << 20) { [self] in
            let result = Result {
                try Worker(configuration: configuration, logger: logger, clock: clock, health: health,
                           onProgress: { [self] stats in state.withLock { $0.progress = stats } })
                    .run(stop: stopRequest)
            }
            let waiters = state.withLock { s in
                s.outcome = result
                if case .success(let stats) = result { s.progress = stats }
                defer { s.waiters = [] }
                return s.waiters
            }
            finished.signal()
            for w in waiters { w.resume() }
        }
    }

    /// Asks the worker to stop: it finishes what it holds first, within the shutdown timeout.
    /// Asked again, it gives up at once.
    public func stop() { stopRequest.ask() }

    /// The counters as of the worker's last report.
    public var progress: WorkerStats { state.withLock { $0.progress } }

    /// The outcome, once the worker ended.
    public var outcome: Result<WorkerStats, any Error>? { state.withLock { $0.outcome } }

    /// Blocks until the worker ends (up to `timeout`) and returns its outcome.
    public func join(timeout: Duration = .seconds(600)) throws -> WorkerStats {
        guard finished.wait(timeout: .now() + timeout.seconds) == .success else {
            throw EngineError(.stopped, "the worker did not stop within \(timeout)")
        }
        finished.signal()  // later joins return at once
        return try outcome!.get()
    }

    /// Starts the worker (if not yet) and blocks until it ends.
    public func runToEnd() throws -> WorkerStats {
        start()
        return try join(timeout: .seconds(Int64.max / 2))
    }

    /// `Service`: runs the worker until it ends, stopping it on graceful shutdown.
    public func run() async throws {
        start()
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { s in
                    if s.outcome != nil { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        } onGracefulShutdown: { [self] in
            stop()
        }
        _ = try outcome!.get()
    }
}
