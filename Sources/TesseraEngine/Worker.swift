import Foundation
import Logging
import TesseraCore
import TesseraKafka
import TesseraRedis
import TesseraSource
import TesseraTopology

/// Everything `tessera run` needs to know.
public struct WorkerOptions: Sendable {
    public var topologies: [Topology]
    public var brokers: String
    public var group = "tessera"
    public var redis: RedisEndpoint
    public var offlineDirectory: String
    /// Where partition checkpoints go; every worker of the group must reach it.
    public var stateDirectory: String?
    public var kafkaProperties: [(String, String)] = []
    /// Stop once every assigned partition is drained (like `kcat -e`), after flushing everything.
    public var untilEnd = false
    /// Online rows are written at most once per entity per interval.
    public var flushInterval: Duration = .milliseconds(100)
    /// Offline files are rolled, and offsets committed, at this interval.
    public var rollInterval: Duration = .seconds(10)
    /// A partition without events for this long advances its stream time from the wall clock.
    public var idleTimeout: Duration? = .seconds(60)
    public var deadLetters: DeadLetterDestination?
    public var keyPrefix = "tessera:"
    public var statsInterval: Duration? = .seconds(5)
    public var maxMessageBytes = 1 << 20
    public var batchSize = 8_192
    /// Called on the worker thread after every poll, with the counters so far.
    public var onProgress: (@Sendable (WorkerStats) -> Void)?

    public init(topologies: [Topology], brokers: String, redis: RedisEndpoint, offlineDirectory: String) {
        self.topologies = topologies
        self.brokers = brokers
        self.redis = redis
        self.offlineDirectory = offlineDirectory
    }
}

/// Counters of a run, for the stats line and for callers.
public struct WorkerStats: Sendable {
    public var events = 0
    public var aggregated = 0
    public var late = 0
    public var deadLettered = 0
    public var misKeyed = 0
    public var emissions = 0
    public var redisWrites = 0
    public var redisCommands = 0
    public var offlineRows = 0
    public var commits = 0
    public var lag: Int64 = 0
    /// Partitions currently assigned to this worker.
    public var partitions = 0

    public init() {}
}

/// The worker: Kafka → decode → aggregate → Redis and the offline log, with offsets committed
/// only behind durable output. One instance runs on one thread (`run`).
public final class Worker: RebalanceListener, @unchecked Sendable {  // confined to the thread calling run()
    public let options: WorkerOptions
    let logger: Logger
    let consumer: KafkaConsumer
    let online: OnlineWriter
    let offline: OfflineLog
    let deadLetters: DeadLetterSink
    let checkpoints: CheckpointStore?
    let sources: [Source]
    /// Views per source index.
    let views: [[FeatureView]]
    var partitions: [TopicPartition: PartitionWorker] = [:]
    public private(set) var stats = WorkerStats()
    private var stopRequested: @Sendable () -> Bool = { false }

    /// The state of one assigned partition.
    final class PartitionWorker {
        let tp: TopicPartition
        let source: Int
        var core: PartitionAggregator
        var decoder: JSONEventDecoder
        var batch: ColumnBatch
        /// Input offset of each batch row, and the record (in the polled batch) it came from.
        var rowOffsets: [Int64] = []
        var rowRecords: [Int] = []
        /// The offset of the next record to read, and the last one committed.
        var nextOffset: Int64 = -1
        var committedOffset: Int64 = -1
        var lastCreated: Micros = 0
        var lastEvent = ContinuousClock.now
        var created: [Micros] = []
        var offsets: [Int64] = []

        let topicIndex: Int
        var partition: Int32 { tp.partition }
        var touched = false

        init(tp: TopicPartition, topicIndex: Int, source: Int, core: PartitionAggregator, decoder: JSONEventDecoder, schema: Schema) {
            self.tp = tp
            self.topicIndex = topicIndex
            self.source = source
            self.core = core
            self.decoder = decoder
            batch = ColumnBatch(schema: schema.types)
        }
    }

    public init(options: WorkerOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        var sources: [Source] = []
        var views: [[FeatureView]] = []
        var allViews: [FeatureView] = []
        for t in options.topologies {
            for s in t.sources {
                let v = t.views.filter { $0.source == s.name }
                guard !v.isEmpty else { continue }
                if let i = sources.firstIndex(where: { $0.topic == s.topic }) {
                    guard sources[i].schema == s.schema, sources[i].timestamp == s.timestamp else {
                        throw WorkerError("topic \(s.topic) is declared by two sources with different fields; declare it once")
                    }
                    views[i] += v
                } else {
                    sources.append(s)
                    views.append(v)
                }
                allViews += v
            }
        }
        guard !sources.isEmpty else { throw WorkerError("the topologies define no feature view; nothing to compute") }
        self.sources = sources
        self.views = views
        consumer = try KafkaConsumer(brokers: options.brokers, group: options.group, topics: sources.map(\.topic),
                                     properties: options.kafkaProperties, reportEndOfPartition: options.untilEnd,
                                     batchSize: options.batchSize, logger: logger)
        online = OnlineWriter(layout: OnlineLayout(prefix: options.keyPrefix),
                              connection: RedisConnection(endpoint: options.redis, logger: logger), views: allViews, logger: logger)
        offline = try OfflineLog(directory: options.offlineDirectory, views: allViews.filter(\.offline))
        var producer: KafkaProducer?
        if case .topic = options.deadLetters {
            producer = try KafkaProducer(brokers: options.brokers, properties: options.kafkaProperties.filter { !$0.0.hasPrefix("group.") }, logger: logger)
        }
        deadLetters = try DeadLetterSink(destination: options.deadLetters ?? .file("\(options.offlineDirectory)/_dead_letters.jsonl"), producer: producer)
        checkpoints = options.stateDirectory.map { CheckpointStore(directory: "\($0)/\(options.group)") }
        consumer.setListener(self)
    }

    /// The partition worker of a record's topic index and partition.
    private func lookup(topic: Int, partition: Int32) -> PartitionWorker? {
        partitions[TopicPartition(consumer.topics[topic], partition)]
    }

    deinit { online.stop() }

    // MARK: - Rebalances

    public func assigned(_ tps: [TopicPartition]) -> [TopicPartition: Int64] {
        var starts: [TopicPartition: Int64] = [:]
        for tp in tps {
            guard let s = sources.firstIndex(where: { $0.topic == tp.topic }) else { continue }
            let source = sources[s]
            let specs = views[s].map(\.spec)
            var core = PartitionAggregator(views: specs, allowedLateness: source.allowedLateness)
            var lastCreated: Micros = 0
            if let checkpoints {
                do {
                    if let saved = try checkpoints.load(tp) {
                        core = try PartitionAggregator(views: specs, allowedLateness: source.allowedLateness, restoring: saved.state)
                        starts[tp] = saved.nextOffset
                        lastCreated = saved.lastCreated
                        logger.info("restored partition state", metadata: ["partition": "\(tp)", "offset": "\(saved.nextOffset)"])
                    }
                } catch {
                    logger.error("cannot restore \(tp) from its checkpoint; starting from empty state at the committed offset: \(error)")
                }
            }
            let worker = PartitionWorker(tp: tp, topicIndex: consumer.topics.firstIndex(of: tp.topic) ?? 0, source: s, core: core,
                                         decoder: JSONEventDecoder(source: source, maxBytes: options.maxMessageBytes), schema: source.schema)
            worker.lastCreated = lastCreated
            if let start = starts[tp] { worker.nextOffset = start; worker.committedOffset = start }
            partitions[tp] = worker
        }
        return starts
    }

    public func revoked(_ tps: [TopicPartition]) {
        let numbers = Set(tps.map(\.partition))
        do {
            try makeDurable(partitions: numbers)
            for tp in tps { try checkpoint(tp) }
        } catch {
            logger.error("could not flush revoked partitions \(tps.sorted()): \(error); their new owner replays from the last commit")
            online.discard(partitions: numbers)
            offline.discard(partitions: numbers)
        }
        for tp in tps { partitions[tp] = nil }
    }

    private func checkpoint(_ tp: TopicPartition) throws {
        guard let checkpoints, let p = partitions[tp], p.nextOffset >= 0 else { return }
        try checkpoints.save(tp, .init(nextOffset: p.nextOffset, lastCreated: p.lastCreated, state: p.core.serialized()))
    }

    // MARK: - The loop

    /// Runs until `shouldStop()` is true (or, with `untilEnd`, until every partition is drained),
    /// then flushes, commits, checkpoints and leaves the group.
    public func run(shouldStop: @escaping @Sendable () -> Bool) throws -> WorkerStats {
        stopRequested = shouldStop
        let clock = ContinuousClock()
        var nextFlush = clock.now + options.flushInterval
        var nextRoll = clock.now + options.rollInterval
        var nextStats = clock.now + (options.statsInterval ?? .seconds(3600))
        var lastStats = (time: clock.now, events: 0, writes: 0)
        var sawAssignment = false
        while !shouldStop() {
            try consumer.poll(timeout: 50) { records in try self.process(records) }
            if !consumer.assignment.isEmpty { sawAssignment = true }
            let now = clock.now
            if now >= nextFlush {
                try online.flushIfIdle()
                nextFlush = now + options.flushInterval
            }
            if now >= nextRoll {
                try makeDurable(partitions: nil)
                nextRoll = now + options.rollInterval
            }
            if let idle = options.idleTimeout, !options.untilEnd { advanceIdle(after: idle) }
            if options.statsInterval != nil && now >= nextStats {
                updateLag()
                let seconds = (now - lastStats.time) / .seconds(1)
                let rate = Double(stats.events - lastStats.events) / seconds
                let writes = Double(online.writes - lastStats.writes) / seconds
                logger.info("\(Int(rate)) events/s | lag \(stats.lag) | late \(stats.late) | dead-lettered \(deadLetters.total) | Redis \(Int(writes)) writes/s\(online.isRetrying ? " (unreachable, retrying)" : "") | offline \(stats.offlineRows) rows")
                lastStats = (now, stats.events, online.writes)
                nextStats = now + options.statsInterval!
            }
            if let onProgress = options.onProgress {
                stats.partitions = partitions.count
                stats.redisWrites = online.writes
                stats.deadLettered = deadLetters.total
                onProgress(stats)
            }
            if options.untilEnd && sawAssignment && !consumer.assignment.isEmpty && consumer.atEnd.isSuperset(of: consumer.assignment) {
                break
            }
        }
        try makeDurable(partitions: nil)
        for tp in partitions.keys.sorted() { try checkpoint(tp) }
        consumer.close()
        online.stop()
        stats.redisWrites = online.writes
        stats.redisCommands = online.commands
        stats.deadLettered = deadLetters.total
        updateLag()
        return stats
    }

    /// Decodes, aggregates and buffers one polled batch (payloads are valid only in here).
    private func process(_ records: UnsafeBufferPointer<KafkaRecord>) throws {
        stats.events += records.count
        var touched: [PartitionWorker] = []
        var current: PartitionWorker?
        for (index, r) in records.enumerated() {
            // Records come in runs of one partition: look the partition up only when it changes.
            if current == nil || current!.partition != r.partition || current!.topicIndex != r.topic {
                current = lookup(topic: r.topic, partition: r.partition)
                if let p = current, !p.touched {
                    p.touched = true
                    touched.append(p)
                }
            }
            guard let p = current else { continue }
            p.nextOffset = r.offset + 1
            if let rejection = p.decoder.decode(r.payload, into: &p.batch) {
                try deadLetters.record(topic: p.tp.topic, partition: p.tp.partition, offset: r.offset, rejection: rejection, payload: r.payload)
                continue
            }
            p.rowOffsets.append(r.offset)
            p.rowRecords.append(index)
        }
        for p in touched { p.touched = false }
        for p in touched where p.batch.count > 0 {
            let rejected = p.core.ingest(p.batch)
            for (row, reason) in rejected {
                if case .late = reason { stats.late += 1 }
                let record = records[p.rowRecords[row]]
                try deadLetters.record(topic: p.tp.topic, partition: p.tp.partition, offset: record.offset,
                                       rejection: Rejection(reason), payload: record.payload)
            }
            stats.aggregated += p.batch.count - rejected.count
            p.lastEvent = .now
            emit(p, lastBefore: p.rowOffsets.first.map { $0 - 1 } ?? p.nextOffset - 1)
            p.batch.removeAll()
            p.rowOffsets.removeAll(keepingCapacity: true)
            p.rowRecords.removeAll(keepingCapacity: true)
        }
    }

    /// Hands a partition's new emissions to both sinks with their created timestamps and offsets.
    private func emit(_ p: PartitionWorker, lastBefore: Int64) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        for (v, view) in views[p.source].enumerated() {
            let e = p.core.views[v].emissions
            guard e.count > 0 else { continue }
            p.created.removeAll(keepingCapacity: true)
            p.offsets.removeAll(keepingCapacity: true)
            for i in 0..<e.count {
                p.lastCreated = max(now, p.lastCreated + 1)
                p.created.append(p.lastCreated)
                let row = Int(e.inputRows[i])
                p.offsets.append(row >= 0 ? p.rowOffsets[row] : lastBefore)
            }
            stats.emissions += e.count
            if view.online { online.add(view: view.name, partition: p.tp.partition, emissions: e, created: p.created) }
            if view.offline { offline.append(view: view.name, partition: p.tp.partition, emissions: e, created: p.created, offsets: p.offsets) }
        }
        p.core.removeAllEmissions()
    }

    /// Advances the stream time of partitions idle for `idle` to the wall clock minus `idle`.
    private func advanceIdle(after idle: Duration) {
        let now = ContinuousClock.now
        for p in partitions.values where now - p.lastEvent >= idle {
            let wall = Int64(Date().timeIntervalSince1970 * 1_000_000) - Int64(idle / .microseconds(1))
            if wall > p.core.streamTime {
                p.core.advance(to: wall)
                emit(p, lastBefore: p.nextOffset - 1)
            }
            p.lastEvent = now
        }
    }

    /// Makes every emission so far durable in both sinks, then commits the offsets behind them.
    private func makeDurable(partitions only: Set<Int32>?) throws {
        try online.flush()
        try withBackoff("write the offline log") { stats.offlineRows += try offline.roll(partitions: only) }
        try withBackoff("write dead letters") { try deadLetters.flush() }
        var commit: [TopicPartition: Int64] = [:]
        for (tp, p) in partitions where (only?.contains(tp.partition) ?? true) && p.nextOffset > p.committedOffset {
            commit[tp] = p.nextOffset
        }
        guard !commit.isEmpty else { return }
        do {
            try withBackoff("commit offsets") { try consumer.commit(commit) }
        } catch let e as KafkaError where e.isRebalance {
            // The group is rebalancing: this commit is refused, the next one (or the revoke) makes it.
            logger.info("commit deferred during a rebalance", metadata: ["error": "\(e)"])
            return
        }
        for (tp, offset) in commit { partitions[tp]?.committedOffset = offset }
        stats.commits += 1
    }

    /// Retries retriable failures with exponential backoff (up to 5 s between tries) until they
    /// succeed or a stop is requested; while retrying the worker does not poll, so nothing buffers
    /// without bound.
    private func withBackoff(_ what: String, _ body: () throws -> Void) throws {
        var delay = 0.05
        while true {
            do {
                try body()
                return
            } catch let e as RedisError where e.isRetriable {
                logger.warning("cannot \(what), retrying in \(delay) s: \(e)")
            } catch let e as KafkaError where e.isRetriable {
                logger.warning("cannot \(what), retrying in \(delay) s: \(e)")
            }
            if stopRequested() { throw WorkerError("stopped while trying to \(what)") }
            Thread.sleep(forTimeInterval: delay)
            delay = min(5, delay * 2)
        }
    }

    private func updateLag() {
        var lag: Int64 = 0
        for (tp, p) in partitions {
            if let high = consumer.highWatermark(tp), p.nextOffset >= 0 { lag += max(0, high - p.nextOffset) }
        }
        stats.lag = lag
    }
}

public struct WorkerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
