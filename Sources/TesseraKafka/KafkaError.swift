import TesseraCore

/// A librdkafka error: librdkafka's code and name, the operation that met it, and whether
/// retrying may help.
public struct KafkaError: TesseraError {
    /// librdkafka's `rd_kafka_resp_err_t` (negative: client-side, positive: broker).
    public var libraryCode: Int32
    public var message: String
    public var operation: String
    public var isRetriable: Bool

    public init(libraryCode: Int32, message: String, operation: String, isRetriable: Bool = false) {
        self.libraryCode = libraryCode
        self.message = message
        self.operation = operation
        self.isRetriable = isRetriable
    }

    public var code: ErrorCode { isRetriable ? .kafkaTransient : .kafka }
    public var remedy: String? {
        isRetriable ? "Retried with backoff; check that the brokers are up and reachable" : nil
    }
    public var description: String { "\(operation): \(message) (librdkafka error \(libraryCode))" }

    /// The group moved on (illegal generation, unknown member, rebalance in progress): a commit
    /// made now is refused and must wait for the rebalance.
    public var isRebalance: Bool { RDKafkaCode.rebalance.contains(libraryCode) }
}

extension ErrorCode {
    /// Kafka refused something or was misconfigured.
    public static let kafka = ErrorCode("kafka.error")
    /// Kafka is unreachable or busy for now.
    public static let kafkaTransient = ErrorCode("kafka.transient")
}

/// A topic and one of its partitions.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
}
