import Logging
import Synchronization

/// One record of a polled batch. `payload` and `key` point into librdkafka's buffers and are
/// valid only inside the `poll` closure; copy what must outlive it.
public struct KafkaRecord {
    /// Index into `KafkaConsumer.topics`.
    public let topic: Int
    public let partition: Int32
    public let offset: Int64
    public let payload: UnsafeRawBufferPointer
    /// Empty when the record has no key.
    public let key: UnsafeRawBufferPointer
    /// When the record was produced (or appended to the log), in milliseconds; -1 if unknown.
    public let timestampMillis: Int64
    /// librdkafka's message (for `header`).
    let message: UnsafeMutableRawPointer?

    /// The value of the record's last header named `name`: nil if it has none, empty for a
    /// header without a value. Valid, like `payload`, only inside the `poll` closure.
    public func header(_ name: String) -> UnsafeRawBufferPointer? { RDKafkaMessage.header(message, name) }
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
/// Offsets are never auto-committed: the owner commits what is durable in its sinks. Not
/// Sendable: it belongs to the one thread that polls it (the worker's); rebalance callbacks run
/// inside `poll` and `close` on that thread.
public final class KafkaConsumer {
    public let topics: [String]
    public let logger: Logger
    private let client: RDKafkaClient
    private let queue: RDKafkaQueue
    /// The most records one poll returns.
    public let batchSize: Int
    private var topicIndex: [UnsafeRawPointer: Int] = [:]
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
    /// Subscribed topics the brokers do not know yet: waited for (librdkafka subscribes to each
    /// once it appears), said in a warning once a minute.
    public private(set) var missingTopics: Set<String> = []
    private var missingWarned: ContinuousClock.Instant?
    /// Partitions held back by `hold`: their records are fetched as usual but kept here, not
    /// handed to `poll`'s body, until `release`.
    private var held: Set<TopicPartition> = []
    private var kept: [TopicPartition: [RDKafkaKeptMessage]] = [:]
    /// Records of released partitions, handed over (in order) before any new batch.
    private var released: [RDKafkaKeptMessage] = []

    /// - Parameters:
    ///   - properties: librdkafka properties; these defaults apply unless overridden:
    ///     `enable.auto.commit=false`, `enable.auto.offset.store=false`, `auto.offset.reset=earliest`,
    ///     `partition.assignment.strategy=cooperative-sticky`, `max.partition.fetch.bytes=4194304` (4 × fewer
    ///     fetches than librdkafka's 1 MiB while catching up; the test broker's CPU per event −20 %),
    ///     and `topic.metadata.refresh.interval.ms=10000`
    ///     (librdkafka's 5 min would leave a topic created after the start unread that long).
    public init(brokers: String, group: String, topics: [String], properties: [(String, String)] = [],
                reportEndOfPartition: Bool = false, batchSize: Int = 8_192, logger: Logger) throws(KafkaError) {
        self.topics = topics
        self.logger = logger
        self.batchSize = batchSize
        var all: [(String, String)] = [
            ("bootstrap.servers", brokers), ("group.id", group),
            ("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"), ("partition.assignment.strategy", "cooperative-sticky"),
            ("enable.partition.eof", reportEndOfPartition ? "true" : "false"),
            ("queued.min.messages", "200000"), ("fetch.wait.max.ms", "50"), ("max.partition.fetch.bytes", "4194304"),
            ("topic.metadata.refresh.interval.ms", "10000"),
        ]
        if supportsFetchQueueBackoff { all.append(("fetch.queue.backoff.ms", "10")) }
        all += properties
        client = try RDKafkaClient(.consumer, properties: all, logger: logger, operation: "create consumer", rebalance: true)
        queue = client.consumerQueue()
        client.context.rebalance = { [weak self, unowned client] code, list in
            if let self { self.rebalance(code, list) } else { client.defaultRebalance(code, list) }
        }
        try client.subscribe(topics)
    }

    deinit {
        // No listener calls from here on: the consumer is being torn down.
        client.context.rebalance = nil
        close()
    }

    public func setListener(_ listener: any RebalanceListener) { self.listener = listener }

    private func rebalance(_ code: Int32, _ list: PartitionList) {
        cooperative = client.isCooperative
        let partitions = list.entries.map(\.0)
        switch code {
        case RDKafkaClient.assignPartitions:
            let starts = listener?.assigned(partitions) ?? [:]
            list.setOffsets(starts)
            let result = client.assign(list, add: true)
            if result != RDKafkaCode.noError { logger.error("assign failed: \(RDKafkaCode.name(result))") }
            assignment.formUnion(partitions)
            atEnd.subtract(partitions)
            missingTopics.subtract(partitions.map(\.topic))
            logger.info("partitions assigned", metadata: ["partitions": "\(partitions.sorted())", "protocol": "\(cooperative ? "cooperative" : "eager")"])
        case RDKafkaClient.revokePartitions:
            listener?.revoked(partitions)
            drop(Set(partitions))
            let result = client.assign(list, add: false)
            if result != RDKafkaCode.noError { logger.error("unassign failed: \(RDKafkaCode.name(result))") }
            assignment.subtract(partitions)
            atEnd.subtract(partitions)
            paused.subtract(partitions)
            logger.info("partitions revoked", metadata: ["partitions": "\(partitions.sorted())"])
        default:
            logger.error("rebalance error: \(RDKafkaCode.name(code))")
            client.unassignAll()
            listener?.revoked(Array(assignment))
            drop(assignment)
            assignment = []
            paused = []
        }
    }

    /// A subscribed topic does not exist (yet): not an error, the worker waits for it.
    private func topicMissing(_ m: RDKafkaMessage) {
        let detail = String(decoding: m.payload, as: UTF8.self)
        let named = m.topic.map { RDKafkaQueue.topicName(of: $0) } ?? topics.first { detail.contains($0) }
        missingTopics.insert(named ?? topics.joined(separator: ","))
        let now = ContinuousClock.now
        if missingWarned.map({ now - $0 >= .seconds(60) }) ?? true {
            missingWarned = now
            logger.warning("topic \(missingTopics.sorted().joined(separator: ", ")) does not exist yet; waiting for it (consumed once it is created)",
                           metadata: ["detail": "\(detail)"])
        }
    }

    /// Waits up to `timeout` milliseconds for a batch and calls `body` with its records (then frees
    /// them). Returns the number of records; errors other than end-of-partition are thrown after
    /// the records are handled.
    @discardableResult
    public func poll(timeout: Int32, _ body: (UnsafeBufferPointer<KafkaRecord>) throws -> Void) throws -> Int {
        if !released.isEmpty { return try deliverReleased(body) }
        var failure: KafkaError?
        // Built in a local (no exclusivity check per record), handed back after the batch.
        var records = self.records
        self.records = []
        records.removeAll(keepingCapacity: true)
        defer { self.records = records }
        // Records come in runs of one topic: its index is looked up when the topic changes.
        var lastTopic: (rkt: UnsafeRawPointer, index: Int)?
        _ = try queue.consumeBatch(timeoutMs: timeout, limit: batchSize) { n, message in
            for i in 0..<n {
                let m = message(i)
                if m.code != RDKafkaCode.noError {
                    if m.code == RDKafkaQueue.partitionEOF, let rkt = m.topic {
                        atEnd.insert(TopicPartition(RDKafkaQueue.topicName(of: rkt), m.partition))
                    } else if RDKafkaCode.unknownTopic.contains(m.code) {
                        topicMissing(m)
                    } else {
                        let error = RDKafkaCode.error(m.code, "consume")
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
                guard let rkt = m.topic else { continue }
                let topic: Int
                if let last = lastTopic, last.rkt == rkt {
                    topic = last.index
                } else {
                    topic = index(of: rkt)
                    lastTopic = (rkt, topic)
                }
                if !atEnd.isEmpty || !held.isEmpty {
                    let tp = TopicPartition(topics[topic], m.partition)
                    atEnd.remove(tp)
                    if held.contains(tp) {
                        kept[tp, default: []].append(queue.keep(i))
                        continue
                    }
                }
                records.append(record(m, topic: topic))
            }
            try records.withUnsafeBufferPointer { try body($0) }
        }
        if let failure { throw failure }
        return records.count
    }

    private func index(of rkt: UnsafeRawPointer) -> Int {
        if let t = topicIndex[rkt] { return t }
        let t = topics.firstIndex(of: RDKafkaQueue.topicName(of: rkt)) ?? 0
        topicIndex[rkt] = t
        return t
    }

    private func record(_ m: RDKafkaMessage, topic: Int) -> KafkaRecord {
        KafkaRecord(topic: topic, partition: m.partition, offset: m.offset, payload: m.payload, key: m.key,
                    timestampMillis: m.timestampMillis, message: m.message)
    }

    // MARK: - Holding partitions back

    /// Holds a partition's records back: from the next poll on, they are kept instead of handed
    /// over, until `release`. (The worker holds a partition while a copy of its state is being
    /// serialized, so that the state is not written meanwhile.) Fetching goes on.
    public func hold(_ tp: TopicPartition) {
        guard assignment.contains(tp) else { return }
        held.insert(tp)
    }

    /// Ends a hold: the records kept meanwhile come first out of the next polls, in order.
    public func release(_ tp: TopicPartition) {
        guard held.remove(tp) != nil else { return }
        if let k = kept.removeValue(forKey: tp) { released += k }
    }

    /// Whether records are kept back (held, or released and not yet handed over).
    public var keepsRecords: Bool { !kept.isEmpty || !released.isEmpty }

    /// Hands over up to a batch of released records (then frees them).
    private func deliverReleased(_ body: (UnsafeBufferPointer<KafkaRecord>) throws -> Void) rethrows -> Int {
        // Taken out first: handling them may pause their partition, which drops what is left.
        let batch = Array(released.prefix(batchSize))
        released.removeFirst(batch.count)
        defer { for m in batch { m.destroy() } }
        records.removeAll(keepingCapacity: true)
        for kept in batch {
            let m = kept.message
            records.append(record(m, topic: index(of: m.topic!)))
        }
        try records.withUnsafeBufferPointer { try body($0) }
        return batch.count
    }

    /// Frees the records kept for partitions no longer assigned or paused (their next reader
    /// reads them from the last committed offset).
    private func drop(_ partitions: Set<TopicPartition>) {
        held.subtract(partitions)
        for tp in partitions { kept.removeValue(forKey: tp)?.forEach { $0.destroy() } }
        guard !released.isEmpty else { return }
        released.removeAll { kept in
            let m = kept.message
            guard partitions.contains(TopicPartition(topics[index(of: m.topic!)], m.partition)) else { return false }
            kept.destroy()
            return true
        }
    }

    /// Stops fetching partitions (a partition that yields only bad events, under that policy).
    /// Nothing more of them is handed over: records of theirs kept back by a hold are dropped
    /// too, as librdkafka drops what it had fetched (the next run reads them again from the
    /// committed offset).
    public func pause(_ partitions: [TopicPartition]) throws(KafkaError) {
        guard !partitions.isEmpty else { return }
        try client.pause(partitions)
        paused.formUnion(partitions)
        drop(Set(partitions))
    }

    /// Commits the given next offsets (the offset of the next record to read) synchronously.
    public func commit(_ offsets: [TopicPartition: Int64]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        try client.commit(offsets)
    }

    /// The group's committed offsets for partitions (nil where none is committed).
    public func committed(_ partitions: [TopicPartition], timeoutMs: Int32 = 10_000) throws(KafkaError) -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for (tp, offset) in try client.committed(partitions, timeoutMs: timeoutMs) where offset >= 0 { result[tp] = offset }
        return result
    }

    /// The high watermark librdkafka last saw for a partition (no broker round trip), or nil.
    public func highWatermark(_ tp: TopicPartition) -> Int64? { client.highWatermark(tp) }

    /// Partitions of a subscribed topic from the cluster's metadata (nil if unknown).
    public func partitionCount(topic: String, timeoutMs: Int32 = 5_000) -> Int? {
        (try? client.partitionCount(topic: client.topic(topic), timeoutMs: timeoutMs)) ?? nil
    }

    /// Leaves the group (revoking partitions through the listener) and stops fetching.
    public func close() {
        guard !closed else { return }
        closed = true
        let code = client.consumerClose()
        if code != RDKafkaCode.noError { logger.warning("consumer close: \(RDKafkaCode.name(code))") }
        drop(Set(kept.keys))
        released.forEach { $0.destroy() }
        released = []
    }
}
