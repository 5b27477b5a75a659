import CRdKafka
import Logging
import Synchronization

/// The one place that owns librdkafka handles. Public types in this target never expose C types.

/// Builds an `rd_kafka_conf_t` from properties; the caller hands it to `rd_kafka_new`.
func makeConfiguration(_ properties: [(String, String)]) throws -> OpaquePointer {
    let conf = rd_kafka_conf_new()!
    for (key, value) in properties {
        var error = [CChar](repeating: 0, count: 512)
        if rd_kafka_conf_set(conf, key, value, &error, error.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            let reason = text(error)
            throw KafkaError(code: -1, message: "property \(key): \(reason)", operation: "configure")
        }
    }
    return conf
}

/// A NUL-terminated C buffer as a String.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func errorName(_ err: rd_kafka_resp_err_t) -> String {
    String(cString: rd_kafka_err2str(err))
}

func kafkaError(_ err: rd_kafka_resp_err_t, _ operation: String) -> KafkaError {
    let retriable: Bool
    switch err {
    case RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL,
         RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
         RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
         RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        retriable = true
    default:
        retriable = false
    }
    return KafkaError(code: err.rawValue, message: errorName(err), operation: operation, isRetriable: retriable)
}

/// The librdkafka version this process runs with (Debian's 2.0.2, or a newer one from
/// `LD_LIBRARY_PATH`).
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// Whether the loaded librdkafka accepts `fetch.queue.backoff.ms` (2.1+): much faster batches.
var supportsFetchQueueBackoff: Bool { rd_kafka_version() >= 0x0201_0000 }

/// librdkafka logs through this: its callback runs on librdkafka's own threads, and a swift-log
/// `Logger` is safe to use from any thread. While a broker stays unreachable librdkafka repeats
/// the same line on every reconnect attempt (as often as every 50 ms while closing): a line seen
/// within the last `quiet` is counted instead of logged, and the count rides on its next showing.
final class LogSink: Sendable {
    let logger: Logger
    private let quiet: Duration
    private let recent = Mutex<[String: (shown: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(logger: Logger, quiet: Duration = .seconds(10)) {
        self.logger = logger
        self.quiet = quiet
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

func installLogCallback(_ conf: OpaquePointer) {
    rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
        guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
        let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
        let line = "\(facility.map { String(cString: $0) } ?? ""): \(message.map { String(cString: $0) } ?? "")"
        // Debug lines (level 7, with `debug=...`) are all shown.
        guard let text = level >= 7 ? line : context.log.admit(line) else { return }
        switch level {
        case 0...3: context.log.logger.error("\(text)")
        case 4: context.log.logger.warning("\(text)")
        case 5, 6: context.log.logger.info("\(text)")
        default: context.log.logger.debug("\(text)")
        }
    }
}

/// The opaque every librdkafka handle carries: the log sink, and for consumers the rebalance
/// handler (called inside `poll`, on the polling thread).
final class ClientContext: @unchecked Sendable {  // `rebalance` is only used on the polling thread
    let log: LogSink
    var rebalance: ((_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)?
    init(log: LogSink) { self.log = log }
}

/// Reads a C partition list into Swift values.
func topicPartitions(_ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> [(TopicPartition, Int64)] {
    (0..<Int(list.pointee.cnt)).map { i in
        let e = list.pointee.elems[i]
        return (TopicPartition(String(cString: e.topic), e.partition), e.offset)
    }
}

/// Builds a C partition list; free it with `rd_kafka_topic_partition_list_destroy`.
func makePartitionList(_ items: [(TopicPartition, Int64)]) -> UnsafeMutablePointer<rd_kafka_topic_partition_list_t> {
    let list = rd_kafka_topic_partition_list_new(Int32(max(1, items.count)))!
    for (tp, offset) in items {
        let e = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
        e.pointee.offset = offset
    }
    return list
}
