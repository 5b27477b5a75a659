/// The delays between retries of a failure that may go away by itself (a server down, a full
/// disk): `first`, doubling, never more than `limit`; `reset()` after a success. The one
/// schedule of every retry loop (the worker's, the Redis flusher's, the storage thread's).
public struct Backoff: Sendable {
    public let first: Duration
    public let limit: Duration
    public private(set) var current: Duration

    public init(first: Duration = .milliseconds(50), limit: Duration = .seconds(5)) {
        self.first = first
        self.limit = limit
        current = first
    }

    /// The delay to wait before the next try; the one after it is twice as long (up to `limit`).
    public mutating func next() -> Duration {
        let delay = current
        current = min(limit, current * 2)
        return delay
    }

    public mutating func reset() { current = first }
}

extension Duration {
    /// The duration in seconds, as a Double (for `Thread.sleep` and log lines).
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
