import CRdKafka
import Logging

/// A producer for the load generator and the dead-letter topic. Messages are copied into
/// librdkafka's queue; `flush` waits for every delivery and reports the first failure.
public final class KafkaProducer: @unchecked Sendable {  // librdkafka's producer is thread-safe; `failures` is only touched inside poll calls on the caller's thread
    private let handle: OpaquePointer
    private let context: ClientContext
    private var topicHandles: [String: OpaquePointer] = [:]
    private let deliveries: DeliveryCounter
    public let logger: Logger

    public init(brokers: String, properties: [(String, String)] = [], logger: Logger) throws {
        self.logger = logger
        let all: [(String, String)] = [
            ("bootstrap.servers", brokers), ("linger.ms", "5"), ("batch.num.messages", "10000"),
            ("queue.buffering.max.messages", "1000000"), ("partitioner", "murmur2_random"),
        ] + properties
        let conf = try makeConfiguration(all)
        context = ClientContext(log: LogSink(logger: logger))
        deliveries = DeliveryCounter()
        rd_kafka_conf_set_opaque(conf, Unmanaged.passRetained(context).toOpaque())
        installLogCallback(conf)
        rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
            guard let message, let opaque = message.pointee._private else { return }
            let counter = Unmanaged<DeliveryCounter>.fromOpaque(opaque).takeUnretainedValue()
            counter.record(message.pointee.err)
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &error, error.count) else {
            rd_kafka_conf_destroy(conf)
            Unmanaged.passUnretained(context).release()
            throw KafkaError(code: -1, message: text(error), operation: "create producer")
        }
        handle = rk
    }

    deinit {
        _ = rd_kafka_flush(handle, 10_000)
        for (_, t) in topicHandles { rd_kafka_topic_destroy(t) }
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    private func topicHandle(_ name: String) -> OpaquePointer {
        if let t = topicHandles[name] { return t }
        let t = rd_kafka_topic_new(handle, name, nil)!
        topicHandles[name] = t
        return t
    }

    /// Queues a message (copied); `partition` nil lets the partitioner pick one from the key
    /// (murmur2, like the Java client). Waits while the local queue is full.
    public func send(topic: String, partition: Int32? = nil, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) throws {
        let rkt = topicHandle(topic)
        let opaque = Unmanaged.passUnretained(deliveries).toOpaque()
        while true {
            let result = rd_kafka_produce(rkt, partition ?? RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                                          UnsafeMutableRawPointer(mutating: value.baseAddress), value.count,
                                          key.baseAddress, key.count, opaque)
            if result == 0 { break }
            let err = rd_kafka_last_error()
            guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { throw kafkaError(err, "produce to \(topic)") }
            rd_kafka_poll(handle, 10)
        }
        deliveries.sent += 1
        if deliveries.sent % 10_000 == 0 { rd_kafka_poll(handle, 0) }
    }

    public func send(topic: String, partition: Int32? = nil, key: [UInt8], value: [UInt8]) throws {
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try send(topic: topic, partition: partition, key: k, value: v) } }
    }

    /// Waits until every queued message is delivered; throws the first delivery failure.
    public func flush(timeoutMs: Int32 = 60_000) throws {
        let err = rd_kafka_flush(handle, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(err, "flush") }
        if let failure = deliveries.takeFailure() { throw kafkaError(failure, "deliver") }
    }

    public var delivered: Int { deliveries.delivered }

    /// Partitions of a topic from the cluster's metadata (nil if the topic does not exist).
    public func partitionCount(topic: String, timeoutMs: Int32 = 10_000) throws -> Int? {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle, 0, topicHandle(topic), &metadata, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw kafkaError(err, "metadata of \(topic)") }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else { return nil }
        let t = metadata.pointee.topics[0]
        if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { return nil }
        return Int(t.partition_cnt)
    }

    /// Creates a topic with the Admin API (no-op if it exists with any partition count).
    public func createTopic(_ name: String, partitions: Int, replication: Int = 1, timeoutMs: Int32 = 30_000) throws {
        var error = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(name, Int32(partitions), Int32(replication), &error, error.count) else {
            throw KafkaError(code: -1, message: text(error), operation: "create topic \(name)")
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        let queue = rd_kafka_queue_new(handle)!
        defer { rd_kafka_queue_destroy(queue) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle, &topics, 1, nil, queue)
        guard let event = rd_kafka_queue_poll(queue, Int32(timeoutMs)) else {
            throw KafkaError(code: -185, message: "timed out", operation: "create topic \(name)", isRetriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        if rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(rd_kafka_event_error(event), "create topic \(name)")
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for i in 0..<count {
            let err = rd_kafka_topic_result_error(results[i])
            if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                throw kafkaError(err, "create topic \(name)")
            }
        }
    }
}

/// Delivery reports arrive inside `rd_kafka_poll`/`flush` on the calling thread.
final class DeliveryCounter: @unchecked Sendable {  // touched only inside poll/flush on the producing thread
    var sent = 0
    var delivered = 0
    var failure: rd_kafka_resp_err_t?
    func record(_ err: rd_kafka_resp_err_t) {
        if err == RD_KAFKA_RESP_ERR_NO_ERROR { delivered += 1 } else if failure == nil { failure = err }
    }
    func takeFailure() -> rd_kafka_resp_err_t? {
        defer { failure = nil }
        return failure
    }
}
