import Synchronization

/// A request to stop the worker, from any thread. The first asks it to finish — flush,
/// checkpoint, commit, leave the group — within the shutdown timeout; a second forces it to give
/// up at once (what was not made durable is replayed from the last checkpoint by the next run).
public final class StopRequest: Sendable {
    private let count = Atomic<Int>(0)

    public init() {}

    /// Asks for a stop; asked a second time, forces it.
    public func ask() { count.add(1, ordering: .relaxed) }

    public var isAsked: Bool { count.load(ordering: .relaxed) >= 1 }
    public var isForced: Bool { count.load(ordering: .relaxed) >= 2 }
}

/// When a worker that was asked to stop gives up finishing: at once when forced, else once the
/// shutdown timeout has passed since it first saw the request. Lives on the worker's thread.
final class StopDeadline {
    let request: StopRequest
    let timeout: Duration
    private var seen: ContinuousClock.Instant?

    init(_ request: StopRequest, timeout: Duration) {
        self.request = request
        self.timeout = timeout
    }

    var isAsked: Bool {
        guard request.isAsked else { return false }
        if seen == nil { seen = .now }
        return true
    }

    /// Why the worker must give up finishing now, or nil while it may go on.
    var giveUpReason: String? {
        guard isAsked else { return nil }
        if request.isForced { return "a second stop signal forced it" }
        return ContinuousClock.now - seen! >= timeout ? "the shutdown timeout (\(timeout)) passed" : nil
    }

    var mustGiveUp: Bool { giveUpReason != nil }
}
