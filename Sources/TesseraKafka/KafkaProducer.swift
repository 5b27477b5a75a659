import Logging
import Synchronization

/// A producer for the load generators and the dead-letter topic. Messages are copied into
/// librdkafka's queue (`sendUncopied` lends them instead); `flush` waits for every delivery and
/// reports the first failure.
///
/// Sendable: librdkafka's producer is thread-safe, the topic handles are behind a mutex and the
/// delivery counter is thread-safe.
public final class KafkaProducer: Sendable {
    private let client: RDKafkaClient
    private let topics = Mutex<[String: RDKafkaTopic]>([:])
    public let logger: Logger

    public init(brokers: String, properties: [(String, String)] = [], logger: Logger) throws(KafkaError) {
        self.logger = logger
        let all: [(String, String)] = [
            ("bootstrap.servers", brokers), ("linger.ms", "5"), ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "1000000"), ("partitioner", "murmur2_random"),
        ] + properties
        client = try RDKafkaClient(.producer, properties: all, logger: logger, operation: "create producer", deliveryReports: true)
    }

    deinit {
        try? client.flush(timeoutMs: 10_000)
    }

    private func topic(_ name: String) -> RDKafkaTopic {
        topics.withLock { topics in
            if let t = topics[name] { return t }
            let t = client.topic(name)
            topics[name] = t
            return t
        }
    }

    /// Queues a message (copied); `partition` nil lets the partitioner pick one from the key
    /// (murmur2, like the Java client). Waits while the local queue is full.
    public func send(topic name: String, partition: Int32? = nil, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(KafkaError) {
        try send(topic: name, partition: partition, key: key, value: value, copy: true)
    }

    /// Queues a message without copying it: librdkafka reads `key` and `value` from the caller's
    /// memory until the message is delivered, so that memory must stay allocated and unchanged
    /// until `flush` returns (the load generator's payloads, written before it starts).
    public func sendUncopied(topic name: String, partition: Int32? = nil, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws(KafkaError) {
        try send(topic: name, partition: partition, key: key, value: value, copy: false)
    }

    private func send(topic name: String, partition: Int32?, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, copy: Bool) throws(KafkaError) {
        let rkt = topic(name)
        while try !client.produce(rkt, partition: partition, key: key, value: value, copy: copy) {
            client.poll(timeoutMs: 10)
        }
        if client.context.deliveries.sent() % 10_000 == 0 { client.poll(timeoutMs: 0) }
    }

    public func send(topic: String, partition: Int32? = nil, key: [UInt8], value: [UInt8]) throws(KafkaError) {
        let failure: KafkaError? = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                do throws(KafkaError) {
                    try send(topic: topic, partition: partition, key: k, value: v)
                    return nil
                } catch { return error }
            }
        }
        if let failure { throw failure }
    }

    /// Waits until every queued message is delivered; throws the first delivery failure.
    public func flush(timeoutMs: Int32 = 60_000) throws(KafkaError) {
        try client.flush(timeoutMs: timeoutMs)
        if let failure = client.context.deliveries.takeFailure() { throw RDKafkaCode.error(failure, "deliver") }
    }

    public var delivered: Int { client.context.deliveries.delivered }

    /// Partitions of a topic from the cluster's metadata (nil if the topic does not exist).
    public func partitionCount(topic name: String, timeoutMs: Int32 = 10_000) throws(KafkaError) -> Int? {
        try client.partitionCount(topic: topic(name), timeoutMs: timeoutMs)
    }

    /// Creates a topic with the Admin API (no-op if it exists with any partition count).
    public func createTopic(_ name: String, partitions: Int, replication: Int = 1, timeoutMs: Int32 = 30_000) throws(KafkaError) {
        try client.createTopic(name, partitions: partitions, replication: replication, timeoutMs: timeoutMs)
    }
}
