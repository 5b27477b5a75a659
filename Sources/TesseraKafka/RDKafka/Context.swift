import Logging
import Synchronization

/// The opaque every librdkafka handle carries, for its callbacks: the log sink (called on
/// librdkafka's own threads), the rebalance handler (inside `poll`, on the polling thread) and
/// the delivery counter (inside `poll`/`flush`, on the calling thread).
///
/// `@unchecked Sendable`: `log` and `deliveries` are thread-safe; `rebalance` is set by the
/// consumer that owns the handle and called only inside that consumer's `poll` and `close`,
/// on its polling thread.
final class ClientContext: @unchecked Sendable {
    let log: LogSink
    let deliveries = DeliveryCounter()
    var rebalance: ((_ code: Int32, _ partitions: PartitionList) -> Void)?

    init(log: LogSink) { self.log = log }
}

/// librdkafka logs through this. While a broker stays unreachable librdkafka repeats the same
/// line on every reconnect attempt (as often as every 50 ms while closing): a line seen within
/// the last `quiet` is counted instead of logged, and the count rides on its next showing.
final class LogSink: Sendable {
    let logger: Logger
    private let quiet: Duration
    private let recent = Mutex<[String: (shown: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(logger: Logger, quiet: Duration = .seconds(10)) {
        self.logger = logger
        self.quiet = quiet
    }

    /// A line of librdkafka's at its syslog level (debug lines, level 7, are all shown).
    func log(level: Int32, _ facility: String, _ message: String) {
        let line = "\(facility): \(message)"
        guard let text = level >= 7 ? line : admit(line) else { return }
        switch level {
        case 0...3: logger.error("\(text)")
        case 4: logger.warning("\(text)")
        case 5, 6: logger.info("\(text)")
        default: logger.debug("\(text)")
        }
    }

    /// The line to log now (with how many times it was held back before), or nil to hold it back.
    func admit(_ text: String, at now: ContinuousClock.Instant = .now) -> String? {
        recent.withLock { seen in
            if let last = seen[text], now - last.shown < quiet {
                seen[text] = (last.shown, last.suppressed + 1)
                return nil
            }
            if seen.count >= 256 { seen = seen.filter { now - $0.value.shown < quiet } }
            let held = seen[text]?.suppressed ?? 0
            seen[text] = (now, 0)
            return held == 0 ? text : "\(text) (and \(held) more time\(held == 1 ? "" : "s") since its last showing)"
        }
    }
}

/// Messages a producer queued, delivered, and its first delivery failure.
final class DeliveryCounter: Sendable {
    private let state = Mutex((sent: 0, delivered: 0, failure: Int32?.none))

    func sent(_ n: Int = 1) -> Int { state.withLock { $0.sent += n; return $0.sent } }
    var delivered: Int { state.withLock { $0.delivered } }

    func record(_ code: Int32) {
        state.withLock { s in
            if code == RDKafkaCode.noError { s.delivered += 1 } else if s.failure == nil { s.failure = code }
        }
    }

    func takeFailure() -> Int32? {
        state.withLock { s in
            defer { s.failure = nil }
            return s.failure
        }
    }
}
