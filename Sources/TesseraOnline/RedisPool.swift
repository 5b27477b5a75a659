import Dispatch
import Logging
import Synchronization
import TesseraRedis

/// At most `size` Redis connections shared by concurrent requests (`tessera serve`). A request
/// borrows one for its round trip; when every connection is lent, it waits for one to come
/// back, so a burst of requests never opens more than `size` connections. hiredis calls block,
/// so they run on a dispatch queue, never on Swift's cooperative pool: at most `size` such
/// threads block at a time.
public final class RedisPool: Sendable {
    /// A connection and the borrower that has it: `@unchecked Sendable` because the pool lends
    /// it to one borrower at a time (taken out of `state.idle` under the lock, put back when the
    /// borrower is done), so no two threads use it at once.
    private final class Lent: @unchecked Sendable {
        let connection: RedisConnection
        init(_ connection: RedisConnection) { self.connection = connection }
    }

    private struct State {
        var idle: [Lent] = []
        var opened = 0
        var waiters: [CheckedContinuation<Lent, Never>] = []
    }

    private let endpoint: RedisEndpoint
    private let logger: Logger
    public let size: Int
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "tessera-redis-pool", attributes: .concurrent)

    public init(endpoint: RedisEndpoint, size: Int, logger: Logger) {
        self.endpoint = endpoint
        self.logger = logger
        self.size = max(1, size)
    }

    /// Connections opened so far (never more than `size`).
    public var opened: Int { state.withLock { $0.opened } }

    /// Runs `body` with a connection of the pool, off the cooperative pool.
    public func with<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        let lent = await borrow()
        defer { giveBack(lent) }
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body(lent.connection) }) }
        }
    }

    private func borrow() async -> Lent {
        enum Next { case ready(Lent), open, wait }
        let next: Next = state.withLock { s in
            if let lent = s.idle.popLast() { return .ready(lent) }
            if s.opened < size {
                s.opened += 1
                return .open
            }
            return .wait
        }
        switch next {
        case .ready(let lent): return lent
        case .open: return Lent(RedisConnection(endpoint: endpoint, logger: logger))
        case .wait:
            return await withCheckedContinuation { continuation in
                // A connection may have come back between the check and here.
                let ready: Lent? = state.withLock { s in
                    if let lent = s.idle.popLast() { return lent }
                    s.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }

    private func giveBack(_ lent: Lent) {
        let waiter: CheckedContinuation<Lent, Never>? = state.withLock { s in
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }
            s.idle.append(lent)
            return nil
        }
        waiter?.resume(returning: lent)
    }
}
