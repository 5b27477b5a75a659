#if canImport(Glibc)
import Glibc
#endif

/// Where Tessera reads the wall clock: created timestamps, idle advancement, freshness and the
/// serving TTL check all ask one of these, so that tests can drive time. (Intervals — flush,
/// roll, checkpoint, backoff — use the monotonic `ContinuousClock`.)
public protocol WallClock: Sendable {
    /// Microseconds since the epoch, UTC.
    func now() -> Micros
}

/// The system's real-time clock.
public struct SystemClock: WallClock {
    public init() {}

    public func now() -> Micros {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * Time.second + Int64(ts.tv_nsec) / 1_000
    }
}
