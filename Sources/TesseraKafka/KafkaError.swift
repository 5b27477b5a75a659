/// A librdkafka error: its code and name, where it came from, and whether retrying may help.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// librdkafka's `rd_kafka_resp_err_t` (negative: client-side, positive: broker).
    public var code: Int32
    public var message: String
    public var operation: String
    public var isRetriable: Bool

    public init(code: Int32, message: String, operation: String, isRetriable: Bool = false) {
        self.code = code
        self.message = message
        self.operation = operation
        self.isRetriable = isRetriable
    }

    public var description: String { "\(operation): \(message) (librdkafka error \(code))" }

    /// The group moved on (illegal generation, unknown member, rebalance in progress): a commit
    /// made now is refused and must wait for the rebalance.
    public var isRebalance: Bool { code == 22 || code == 25 || code == 27 }
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
