import CRdKafka
import Logging
import Synchronization

/// The one owner of an `rd_kafka_t`: it builds the configuration (every client's defaults, log
/// routing and callbacks are set here, once), creates the handle, and destroys it in `deinit`.
/// The pointer never leaves it: every operation on the handle is a method here. Public types of
/// this target never see a C type; every librdkafka call is in this folder.
///
/// `@unchecked Sendable`: its stored properties are immutable, and librdkafka documents
/// `rd_kafka_t` as thread-safe; the non-thread-safe parts (the consumer's message queue, the
/// rebalance handler) belong to the polling thread of their owner.
final class RDKafkaClient: @unchecked Sendable {
    enum Kind {
        case consumer
        case producer
    }

    private let handle: OpaquePointer
    let context: ClientContext

    /// - Parameters:
    ///   - rebalance: route rebalances to `context.rebalance` (consumers).
    ///   - deliveryReports: count delivery reports in `context.deliveries` (producers).
    init(_ kind: Kind, properties: [(String, String)], logger: Logger, operation: String,
         rebalance: Bool = false, deliveryReports: Bool = false) throws(KafkaError) {
        let conf = rd_kafka_conf_new()!
        for (key, value) in properties {
            var error = [CChar](repeating: 0, count: 512)
            if rd_kafka_conf_set(conf, key, value, &error, error.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(libraryCode: RDKafkaCode.clientFailure, message: "property \(key): \(text(error))", operation: operation)
            }
        }
        let context = ClientContext(log: LogSink(logger: logger))
        // The handle's opaque holds the context for the callbacks; released in deinit.
        rd_kafka_conf_set_opaque(conf, Unmanaged.passRetained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf) { rk, level, facility, message in
            guard let rk, let opaque = rd_kafka_opaque(rk) else { return }
            let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
            context.log.log(level: level, facility.map { String(cString: $0) } ?? "", message.map { String(cString: $0) } ?? "")
        }
        if rebalance {
            rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
                guard let rk, let partitions, let opaque else { return }
                let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
                let list = PartitionList(borrowing: partitions)
                if let handler = context.rebalance {
                    handler(err.rawValue, list)
                } else {
                    RDKafkaClient.defaultRebalance(rk, err, list)
                }
            }
        }
        if deliveryReports {
            rd_kafka_conf_set_dr_msg_cb(conf) { rk, message, _ in
                guard let rk, let message, let opaque = rd_kafka_opaque(rk) else { return }
                Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue().deliveries.record(message.pointee.err.rawValue)
            }
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(kind == .consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf, &error, error.count) else {
            // On failure the configuration is still ours, and the opaque was never handed over.
            rd_kafka_conf_destroy(conf)
            Unmanaged.passUnretained(context).release()
            throw KafkaError(libraryCode: RDKafkaCode.clientFailure, message: text(error), operation: operation)
        }
        handle = rk
        self.context = context
        if kind == .consumer { rd_kafka_poll_set_consumer(rk) }
    }

    deinit {
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    // MARK: - Consumer

    func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = PartitionList(topics.map { (TopicPartition($0, RD_KAFKA_PARTITION_UA), RDKafkaCode.invalidOffset) })
        try RDKafkaCode.check(list.withListPointer { rd_kafka_subscribe(handle, $0) }, "subscribe to \(topics)")
    }

    /// The consumer's message queue.
    func consumerQueue() -> RDKafkaQueue { RDKafkaQueue(owning: rd_kafka_queue_get_consumer(handle)!) }

    /// Whether the group runs the cooperative (incremental) rebalance protocol.
    var isCooperative: Bool { Self.isCooperative(handle) }

    /// librdkafka has no protocol (NULL) while the consumer is not in a group — in a rebalance
    /// callback that comes as it leaves, for one: that is not the cooperative protocol.
    static func isCooperative(_ rk: OpaquePointer) -> Bool {
        guard let name = rd_kafka_rebalance_protocol(rk) else { return false }
        return String(cString: name) == "COOPERATIVE"
    }

    /// Takes (`add`) or gives up the partitions of a rebalance, incrementally under the
    /// cooperative protocol; returns librdkafka's code.
    func assign(_ list: PartitionList, add: Bool) -> Int32 {
        list.withListPointer { p in
            if isCooperative {
                return Self.consume(add ? rd_kafka_incremental_assign(handle, p) : rd_kafka_incremental_unassign(handle, p))
            }
            return (add ? rd_kafka_assign(handle, p) : rd_kafka_assign(handle, nil)).rawValue
        }
    }

    func unassignAll() { _ = rd_kafka_assign(handle, nil) }

    func pause(_ partitions: [TopicPartition]) throws(KafkaError) {
        let list = PartitionList(partitions.map { ($0, RDKafkaCode.invalidOffset) })
        try RDKafkaCode.check(list.withListPointer { rd_kafka_pause_partitions(handle, $0) }, "pause \(partitions)")
    }

    /// Commits next offsets synchronously (nothing to commit is not an error).
    func commit(_ offsets: [TopicPartition: Int64]) throws(KafkaError) {
        let list = PartitionList(offsets.map { ($0.key, $0.value) })
        try RDKafkaCode.check(list.withListPointer { rd_kafka_commit(handle, $0, 0) }, "commit",
                              allowing: [RD_KAFKA_RESP_ERR__NO_OFFSET.rawValue])
    }

    func committed(_ partitions: [TopicPartition], timeoutMs: Int32) throws(KafkaError) -> [(TopicPartition, Int64)] {
        let list = PartitionList(partitions.map { ($0, RDKafkaCode.invalidOffset) })
        try RDKafkaCode.check(list.withListPointer { rd_kafka_committed(handle, $0, timeoutMs) }, "fetch committed offsets")
        return list.entries
    }

    /// The high watermark librdkafka last saw for a partition (no broker round trip), or nil.
    func highWatermark(_ tp: TopicPartition) -> Int64? {
        var low: Int64 = -1, high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(handle, tp.topic, tp.partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }

    /// Leaves the group; returns librdkafka's code.
    func consumerClose() -> Int32 { rd_kafka_consumer_close(handle).rawValue }

    // MARK: - Metadata and admin

    /// Partitions of a topic from the cluster's metadata: nil when the topic does not exist.
    func partitionCount(topic: RDKafkaTopic, timeoutMs: Int32) throws(KafkaError) -> Int? {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = topic.withTopicPointer { rd_kafka_metadata(handle, 0, $0, &metadata, timeoutMs) }
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { throw RDKafkaCode.error(err.rawValue, "metadata of \(topic.name)") }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0, metadata.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return Int(metadata.pointee.topics[0].partition_cnt)
    }

    func topic(_ name: String) -> RDKafkaTopic { RDKafkaTopic(name: name, owning: rd_kafka_topic_new(handle, name, nil)!) }

    /// Creates a topic with the Admin API; one that exists already is not an error.
    func createTopic(_ name: String, partitions: Int, replication: Int, timeoutMs: Int32) throws(KafkaError) {
        let operation = "create topic \(name)"
        var error = [CChar](repeating: 0, count: 512)
        guard let newTopic = rd_kafka_NewTopic_new(name, Int32(partitions), Int32(replication), &error, error.count) else {
            throw KafkaError(libraryCode: RDKafkaCode.clientFailure, message: text(error), operation: operation)
        }
        defer { rd_kafka_NewTopic_destroy(newTopic) }
        let queue = rd_kafka_queue_new(handle)!
        defer { rd_kafka_queue_destroy(queue) }
        var topics: [OpaquePointer?] = [newTopic]
        rd_kafka_CreateTopics(handle, &topics, 1, nil, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs) else {
            throw KafkaError(libraryCode: RDKafkaCode.timedOut, message: "timed out", operation: operation, isRetriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        try RDKafkaCode.check(rd_kafka_event_error(event), operation)
        guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        for i in 0..<count {
            try RDKafkaCode.check(rd_kafka_topic_result_error(results[i]), operation,
                                  allowing: [RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS.rawValue])
        }
    }

    // MARK: - Producer

    /// Queues a message, a copy of it or (`copy` false) read from the caller's memory until it is
    /// delivered; false when the local queue is full (poll, then try again).
    func produce(_ topic: RDKafkaTopic, partition: Int32?, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer,
                 copy: Bool) throws(KafkaError) -> Bool {
        let result = topic.withTopicPointer {
            rd_kafka_produce($0, partition ?? RD_KAFKA_PARTITION_UA, copy ? RD_KAFKA_MSG_F_COPY : 0,
                             UnsafeMutableRawPointer(mutating: value.baseAddress), value.count, key.baseAddress, key.count, nil)
        }
        if result == 0 { return true }
        let err = rd_kafka_last_error()
        guard err == RD_KAFKA_RESP_ERR__QUEUE_FULL else { throw RDKafkaCode.error(err.rawValue, "produce to \(topic.name)") }
        return false
    }

    /// Serves callbacks (delivery reports) for up to `timeoutMs`.
    func poll(timeoutMs: Int32) { rd_kafka_poll(handle, timeoutMs) }

    /// Waits for every queued message to be delivered.
    func flush(timeoutMs: Int32) throws(KafkaError) { try RDKafkaCode.check(rd_kafka_flush(handle, timeoutMs), "flush") }

    // MARK: - Mock cluster

    /// The in-process mock cluster of a client created with `test.mock.num.brokers`.
    func mockCluster() -> RDKafkaMockCluster? {
        rd_kafka_handle_mock_cluster(handle).map { RDKafkaMockCluster(owner: self, cluster: $0) }
    }

    // MARK: -

    /// What librdkafka does without a rebalance handler: take or drop the partitions.
    func defaultRebalance(_ code: Int32, _ list: PartitionList) {
        Self.defaultRebalance(handle, rd_kafka_resp_err_t(rawValue: code), list)
    }

    /// What librdkafka does without a rebalance handler: take or drop the partitions.
    private static func defaultRebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ list: PartitionList) {
        let cooperative = isCooperative(rk)
        list.withListPointer { p in
            if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
                if cooperative { _ = consume(rd_kafka_incremental_assign(rk, p)) } else { _ = rd_kafka_assign(rk, p) }
            } else if cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                _ = consume(rd_kafka_incremental_unassign(rk, p))
            } else {
                _ = rd_kafka_assign(rk, nil)
            }
        }
    }

    /// The code of an `rd_kafka_error_t` (freed), or no error.
    private static func consume(_ error: OpaquePointer?) -> Int32 {
        guard let error else { return RDKafkaCode.noError }
        defer { rd_kafka_error_destroy(error) }
        return rd_kafka_error_code(error).rawValue
    }

    static let assignPartitions = RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS.rawValue
    static let revokePartitions = RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS.rawValue
}

/// A NUL-terminated C buffer as a String.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
