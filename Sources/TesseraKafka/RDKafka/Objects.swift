import CRdKafka

/// An `rd_kafka_topic_partition_list_t`: owned (destroyed in `deinit`) when built here, borrowed
/// when librdkafka hands one to a rebalance callback.
final class PartitionList {
    private let list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>
    private let owned: Bool

    init(_ items: [(TopicPartition, Int64)]) {
        list = rd_kafka_topic_partition_list_new(Int32(max(1, items.count)))!
        owned = true
        for (tp, offset) in items {
            let e = rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition)!
            e.pointee.offset = offset
        }
    }

    init(borrowing list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        self.list = list
        owned = false
    }

    deinit { if owned { rd_kafka_topic_partition_list_destroy(list) } }

    func withListPointer<T>(_ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) throws -> T) rethrows -> T {
        try body(list)
    }

    var entries: [(TopicPartition, Int64)] {
        (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return (TopicPartition(String(cString: e.topic), e.partition), e.offset)
        }
    }

    /// Sets the start offset of the partitions given (the others keep theirs).
    func setOffsets(_ offsets: [TopicPartition: Int64]) {
        for i in 0..<Int(list.pointee.cnt) {
            let tp = TopicPartition(String(cString: list.pointee.elems[i].topic), list.pointee.elems[i].partition)
            if let offset = offsets[tp] { list.pointee.elems[i].offset = offset }
        }
    }
}

/// An `rd_kafka_topic_t` (destroyed in `deinit`).
final class RDKafkaTopic {
    let name: String
    private let topic: OpaquePointer

    init(name: String, owning topic: OpaquePointer) {
        self.name = name
        self.topic = topic
    }

    deinit { rd_kafka_topic_destroy(topic) }

    func withTopicPointer<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T { try body(topic) }
}

/// One message of a consumed batch, as Swift values; `payload` and `key` point into
/// librdkafka's buffer and live as long as the batch.
struct RDKafkaMessage {
    var code: Int32
    /// The message's topic handle: the same for every message of one topic of the client
    /// (`RDKafkaQueue.topicName(of:)` names it).
    var topic: UnsafeRawPointer?
    var partition: Int32
    var offset: Int64
    var payload: UnsafeRawBufferPointer
    var key: UnsafeRawBufferPointer
    /// The record's timestamp (create or log-append time) in milliseconds, -1 if it has none.
    var timestampMillis: Int64
    /// The message itself, for its headers (`RDKafkaMessage.header`); valid as long as the batch.
    var message: UnsafeMutableRawPointer?

    /// The value of the message's last header named `name` (nil if it has none; empty for a
    /// header without a value). librdkafka parses a message's headers on the first call.
    static func header(_ message: UnsafeMutableRawPointer?, _ name: String) -> UnsafeRawBufferPointer? {
        guard let message else { return nil }
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message.assumingMemoryBound(to: rd_kafka_message_t.self), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR,
              let headers else { return nil }
        var value: UnsafeRawPointer?
        var size = 0
        guard rd_kafka_header_get_last(headers, name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return UnsafeRawBufferPointer(start: value, count: value == nil ? 0 : size)
    }
}

/// A message kept past its batch (`RDKafkaQueue.keep`); its owner frees it with `destroy`.
struct RDKafkaKeptMessage {
    let pointer: UnsafeMutablePointer<rd_kafka_message_t>
    var message: RDKafkaMessage { RDKafkaQueue.message(pointer) }
    func destroy() { rd_kafka_message_destroy(pointer) }
}

/// An `rd_kafka_queue_t` (destroyed in `deinit`), consumed in batches.
final class RDKafkaQueue {
    private let queue: OpaquePointer
    private var messages: [UnsafeMutablePointer<rd_kafka_message_t>?] = []

    init(owning queue: OpaquePointer) { self.queue = queue }

    deinit { rd_kafka_queue_destroy(queue) }

    /// Waits up to `timeoutMs` for up to `limit` messages and hands them to `body` (then frees
    /// them). Returns how many there were.
    func consumeBatch(timeoutMs: Int32, limit: Int, _ body: (Int, (Int) -> RDKafkaMessage) throws -> Void) rethrows -> Int {
        if messages.count != limit { messages = Array(repeating: nil, count: limit) }
        let n = messages.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_consume_batch_queue(queue, timeoutMs, buffer.baseAddress, buffer.count)
        }
        guard n > 0 else { return 0 }
        defer { for i in 0..<n { if let m = messages[i] { rd_kafka_message_destroy(m) } } }
        try body(n) { i in Self.message(self.messages[i]!) }
        return n
    }

    /// Keeps message `i` of the batch being handed to `consumeBatch`'s body past the batch: it is
    /// not freed with the batch, but by `destroy`.
    func keep(_ i: Int) -> RDKafkaKeptMessage {
        let m = messages[i]!
        messages[i] = nil
        return RDKafkaKeptMessage(pointer: m)
    }

    static func message(_ m: UnsafeMutablePointer<rd_kafka_message_t>) -> RDKafkaMessage {
        let p = m.pointee
        return RDKafkaMessage(
            code: p.err.rawValue, topic: p.rkt.map { UnsafeRawPointer($0) },
            partition: p.partition, offset: p.offset,
            payload: UnsafeRawBufferPointer(start: p.payload, count: p.payload == nil ? 0 : p.len),
            key: UnsafeRawBufferPointer(start: p.key, count: p.key == nil ? 0 : p.key_len),
            timestampMillis: rd_kafka_message_timestamp(m, nil),
            message: UnsafeMutableRawPointer(m))
    }

    static func topicName(of topic: UnsafeRawPointer) -> String {
        String(cString: rd_kafka_topic_name(OpaquePointer(topic)))
    }

    static let partitionEOF = RD_KAFKA_RESP_ERR__PARTITION_EOF.rawValue
}

/// The mock cluster inside a client handle (it lives as long as `owner`).
final class RDKafkaMockCluster {
    private let owner: RDKafkaClient
    private let cluster: OpaquePointer

    init(owner: RDKafkaClient, cluster: OpaquePointer) {
        self.owner = owner
        self.cluster = cluster
    }

    var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    func createTopic(_ name: String, partitions: Int, replication: Int) throws(KafkaError) {
        try RDKafkaCode.check(rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replication)), "create mock topic \(name)")
    }

    func setBroker(_ id: Int32, up: Bool) {
        _ = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
    }

    func pushRequestErrors(apiKey: Int16, codes: [Int32]) {
        var errs = codes.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, errs.count, &errs)
    }
}
