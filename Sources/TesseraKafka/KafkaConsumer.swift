import CRdKafka
import Logging

/// One record of a polled batch. `payload` and `key` point into librdkafka's buffers and are
/// valid only inside the `poll` closure; copy what must outlive it.
public struct KafkaRecord {
    /// Index into `KafkaConsumer.topics`.
    public let topic: Int
    public let partition: Int32
    public let offset: Int64
    public let payload: UnsafeRawBufferPointer
    public let key: UnsafeRawBufferPointer
}

/// What the consumer hands a rebalance: partitions gained (with the offset to start from, or nil
/// for the committed one) or lost (flush and checkpoint them before returning).
public protocol RebalanceListener: AnyObject {
    /// Returns, per partition, the offset to resume from (nil: the group's committed offset).
    func assigned(_ partitions: [TopicPartition]) -> [TopicPartition: Int64]
    func revoked(_ partitions: [TopicPartition])
}

/// A consumer-group member reading batches with `rd_kafka_consume_batch_queue`.
///
/// Offsets are never auto-committed: the owner commits what is durable in its sinks. Use from one
/// thread (the worker's); rebalance callbacks run inside `poll` on that thread.
public final class KafkaConsumer: @unchecked Sendable {  // confined to the polling thread, see above
    public let topics: [String]
    public let logger: Logger
    private let handle: OpaquePointer
    private let queue: OpaquePointer
    private let context: ClientContext
    private var topicIndex: [OpaquePointer: Int] = [:]
    private var messages: [UnsafeMutablePointer<rd_kafka_message_t>?]
    private var records: [KafkaRecord] = []
    public private(set) var assignment: Set<TopicPartition> = []
    /// Partitions that reported end-of-partition since their last message (`enable.partition.eof`).
    public private(set) var atEnd: Set<TopicPartition> = []
    public private(set) var cooperative = false
    private weak var listener: (any RebalanceListener)?
    private var closed = false
    /// The last transient error librdkafka reported (all brokers down, timeouts) and when; it
    /// keeps reconnecting by itself, so these are reported, not thrown.
    public private(set) var lastTransientError: (error: KafkaError, at: ContinuousClock.Instant)?
    public private(set) var transientErrors = 0
    /// Partitions paused by `pause` (not fetched until resumed).
    public private(set) var paused: Set<TopicPartition> = []

    /// - Parameters:
    ///   - properties: librdkafka properties; these defaults apply unless overridden:
    ///     `enable.auto.commit=false`, `enable.auto.offset.store=false`, `auto.offset.reset=earliest`,
    ///     `partition.assignment.strategy=cooperative-sticky`.
    public init(brokers: String, group: String, topics: [String], properties: [(String, String)] = [],
                reportEndOfPartition: Bool = false, batchSize: Int = 8_192, logger: Logger) throws {
        self.topics = topics
        self.logger = logger
        var all: [(String, String)] = [
            ("bootstrap.servers", brokers), ("group.id", group),
            ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"), ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.partition.eof", reportEndOfPartition ? "true" : "false"),
            ("queued.min.messages", "200000"), ("fetch.wait.max.ms", "50"),
        ]
        if supportsFetchQueueBackoff { all.append(("fetch.queue.backoff.ms", "10")) }
        all += properties
        let conf = try makeConfiguration(all)
        context = ClientContext(log: LogSink(logger: logger))
        rd_kafka_conf_set_opaque(conf, Unmanaged.passRetained(context).toOpaque())
        installLogCallback(conf)
        rd_kafka_conf_set_rebalance_cb(conf) { rk, err, partitions, opaque in
            guard let rk, let partitions, let opaque else { return }
            if let handler = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue().rebalance {
                handler(rk, err, partitions)
            } else {
                defaultRebalance(rk, err, partitions)
            }
        }
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, &error, error.count) else {
            rd_kafka_conf_destroy(conf)
            Unmanaged.passUnretained(context).release()
            throw KafkaError(code: -1, message: text(error), operation: "create consumer")
        }
        handle = rk
        rd_kafka_poll_set_consumer(rk)
        queue = rd_kafka_queue_get_consumer(rk)
        messages = Array(repeating: nil, count: batchSize)
        context.rebalance = { [weak self] rk, err, list in
            if let self { self.rebalance(rk, err, list) } else { defaultRebalance(rk, err, list) }
        }

        let subscription = rd_kafka_topic_partition_list_new(Int32(topics.count))!
        defer { rd_kafka_topic_partition_list_destroy(subscription) }
        for t in topics { rd_kafka_topic_partition_list_add(subscription, t, RD_KAFKA_PARTITION_UA) }
        let err = rd_kafka_subscribe(rk, subscription)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(err, "subscribe to \(topics)") }
    }

    deinit {
        // No listener calls from here on: the consumer is being torn down.
        context.rebalance = nil
        close()
        rd_kafka_queue_destroy(queue)
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    public func setListener(_ listener: any RebalanceListener) { self.listener = listener }

    private func rebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
        cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        let partitions = topicPartitions(list).map(\.0)
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            let starts = listener?.assigned(partitions) ?? [:]
            for i in 0..<Int(list.pointee.cnt) {
                let tp = TopicPartition(String(cString: list.pointee.elems[i].topic), list.pointee.elems[i].partition)
                if let offset = starts[tp] { list.pointee.elems[i].offset = offset }
            }
            let result = cooperative ? consume(rd_kafka_incremental_assign(rk, list)) : rd_kafka_assign(rk, list)
            if result != RD_KAFKA_RESP_ERR_NO_ERROR { logger.error("assign failed: \(errorName(result))") }
            assignment.formUnion(partitions)
            atEnd.subtract(partitions)
            logger.info("partitions assigned", metadata: ["partitions": "\(partitions.sorted())", "protocol": "\(cooperative ? "cooperative" : "eager")"])
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            listener?.revoked(partitions)
            let result = cooperative ? consume(rd_kafka_incremental_unassign(rk, list)) : rd_kafka_assign(rk, nil)
            if result != RD_KAFKA_RESP_ERR_NO_ERROR { logger.error("unassign failed: \(errorName(result))") }
            assignment.subtract(partitions)
            atEnd.subtract(partitions)
            paused.subtract(partitions)
            logger.info("partitions revoked", metadata: ["partitions": "\(partitions.sorted())"])
        default:
            logger.error("rebalance error: \(errorName(err))")
            _ = rd_kafka_assign(rk, nil)
            listener?.revoked(Array(assignment))
            assignment = []
            paused = []
        }
    }

    /// Waits up to `timeout` milliseconds for a batch and calls `body` with its records (then frees
    /// them). Returns the number of records; errors other than end-of-partition are thrown after
    /// the records are handled.
    @discardableResult
    public func poll(timeout: Int32, _ body: (UnsafeBufferPointer<KafkaRecord>) throws -> Void) throws -> Int {
        let n = messages.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_consume_batch_queue(queue, timeout, buffer.baseAddress, buffer.count)
        }
        guard n > 0 else { return 0 }
        defer {
            for i in 0..<n { rd_kafka_message_destroy(messages[i]) }
        }
        records.removeAll(keepingCapacity: true)
        var failure: KafkaError?
        for i in 0..<n {
            let m = messages[i]!.pointee
            if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF, let rkt = m.rkt {
                    atEnd.insert(TopicPartition(String(cString: rd_kafka_topic_name(rkt)), m.partition))
                } else {
                    let error = kafkaError(m.err, "consume")
                    if error.isRetriable {
                        lastTransientError = (error, .now)
                        transientErrors += 1
                        logger.warning("Kafka: \(error); librdkafka retries")
                    } else {
                        failure = error
                    }
                }
                continue
            }
            guard let rkt = m.rkt else { continue }
            let topic: Int
            if let t = topicIndex[rkt] { topic = t } else {
                topic = topics.firstIndex(of: String(cString: rd_kafka_topic_name(rkt))) ?? 0
                topicIndex[rkt] = topic
            }
            records.append(KafkaRecord(topic: topic, partition: m.partition, offset: m.offset,
                                       payload: UnsafeRawBufferPointer(start: m.payload, count: m.payload == nil ? 0 : m.len),
                                       key: UnsafeRawBufferPointer(start: m.key, count: m.key == nil ? 0 : m.key_len)))
            if !atEnd.isEmpty { atEnd.remove(TopicPartition(topics[topic], m.partition)) }
        }
        try records.withUnsafeBufferPointer { try body($0) }
        if let failure { throw failure }
        return records.count
    }

    /// Stops fetching partitions (a partition that yields only bad events, under that policy).
    public func pause(_ partitions: [TopicPartition]) throws {
        guard !partitions.isEmpty else { return }
        let list = makePartitionList(partitions.map { ($0, -1001) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_pause_partitions(handle, list)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(err, "pause \(partitions)") }
        paused.formUnion(partitions)
    }

    /// Commits the given next offsets (the offset of the next record to read) synchronously.
    public func commit(_ offsets: [TopicPartition: Int64]) throws {
        guard !offsets.isEmpty else { return }
        let list = makePartitionList(offsets.map { ($0.key, $0.value) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_commit(handle, list, 0)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET else { throw kafkaError(err, "commit") }
    }

    /// The group's committed offsets for partitions (nil where none is committed).
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int32 = 10_000) throws -> [TopicPartition: Int64] {
        let list = makePartitionList(partitions.map { ($0, -1001) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let err = rd_kafka_committed(handle, list, timeoutMs)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(err, "fetch committed offsets") }
        var result: [TopicPartition: Int64] = [:]
        for (tp, offset) in topicPartitions(list) where offset >= 0 { result[tp] = offset }
        return result
    }

    /// The high watermark librdkafka last saw for a partition (no broker round trip), or nil.
    public func highWatermark(_ tp: TopicPartition) -> Int64? {
        var low: Int64 = -1, high: Int64 = -1
        let err = rd_kafka_get_watermark_offsets(handle, tp.topic, tp.partition, &low, &high)
        return err == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }

    /// Partitions of a subscribed topic from the cluster's metadata (nil if unknown).
    public func partitionCount(topic: String, timeoutMs: Int32 = 5_000) -> Int? {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        guard let rkt = rd_kafka_topic_new(handle, topic, nil) else { return nil }
        defer { rd_kafka_topic_destroy(rkt) }
        guard rd_kafka_metadata(handle, 0, rkt, &metadata, timeoutMs) == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else { return nil }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0, metadata.pointee.topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        return Int(metadata.pointee.topics[0].partition_cnt)
    }

    /// Leaves the group (revoking partitions through the listener) and stops fetching.
    public func close() {
        guard !closed else { return }
        closed = true
        let err = rd_kafka_consumer_close(handle)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { logger.warning("consumer close: \(errorName(err))") }
    }
}

/// What librdkafka would do without a rebalance callback: take or drop the partitions.
private func defaultRebalance(_ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) {
    let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
    if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        if cooperative { rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, list)) } else { _ = rd_kafka_assign(rk, list) }
    } else if cooperative && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
        rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, list))
    } else {
        _ = rd_kafka_assign(rk, nil)
    }
}

/// The code of an `rd_kafka_error_t` (freed), or no error.
private func consume(_ error: OpaquePointer?) -> rd_kafka_resp_err_t {
    guard let error else { return RD_KAFKA_RESP_ERR_NO_ERROR }
    defer { rd_kafka_error_destroy(error) }
    return rd_kafka_error_code(error)
}
