import CRdKafka

/// librdkafka's error codes Tessera acts on, by name (`rd_kafka_resp_err_t`: negative codes are
/// the client's own, positive ones the broker's).
enum RDKafkaCode {
    static let noError = RD_KAFKA_RESP_ERR_NO_ERROR.rawValue
    /// The client could not do what was asked (bad property, no mock cluster): librdkafka gave
    /// text, not a code.
    static let clientFailure = RD_KAFKA_RESP_ERR__FAIL.rawValue
    static let timedOut = RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue
    /// The group moved on (illegal generation, unknown member, rebalance in progress): a commit
    /// made now is refused and must wait for the rebalance.
    static let rebalance: Set<Int32> = [
        RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION.rawValue, RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID.rawValue,
        RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue,
    ]
    /// Failures that go away by themselves (brokers down or busy, a coordinator moving).
    static let transient: Set<Int32> = [
        RD_KAFKA_RESP_ERR__TRANSPORT.rawValue, RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue, RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR.rawValue, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE.rawValue,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS.rawValue, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS.rawValue,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue,
    ]
    /// A subscribed topic the brokers do not know (yet).
    static let unknownTopic: Set<Int32> = [RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART.rawValue, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC.rawValue]
    /// "Use the committed offset" in a partition list (`RD_KAFKA_OFFSET_INVALID`).
    static let invalidOffset: Int64 = -1001

    static func name(_ code: Int32) -> String {
        String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(rawValue: code)))
    }

    static func error(_ code: Int32, _ operation: String) -> KafkaError {
        KafkaError(libraryCode: code, message: name(code), operation: operation, isRetriable: transient.contains(code))
    }

    static func check(_ err: rd_kafka_resp_err_t, _ operation: String, allowing: Set<Int32> = []) throws(KafkaError) {
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || allowing.contains(err.rawValue) else { throw error(err.rawValue, operation) }
    }
}

/// The librdkafka version this process runs with (Debian's 2.0.2, or a newer one from
/// `LD_LIBRARY_PATH`).
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }

/// Whether the loaded librdkafka accepts `fetch.queue.backoff.ms` (2.1+): much faster batches.
var supportsFetchQueueBackoff: Bool { rd_kafka_version() >= 0x0201_0000 }
