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
    /// With `untilEnd`, when other members hold some partitions: how long this worker's drained
    /// assignment must stay unchanged before it stops.
    public var untilEndSettle: Duration = .seconds(10)
    /// Online rows are written at most once per entity per interval.
    public var flushInterval: Duration = .milliseconds(100)
    /// Offline files are rolled at this interval.
    public var rollInterval: Duration = .seconds(10)
    /// Partitions are checkpointed, and offsets committed behind the checkpoints, at this interval.
    public var checkpointInterval: Duration = .seconds(30)
    /// A partition without events for this long advances its stream time from the wall clock.
    public var idleTimeout: Duration? = .seconds(60)
    public var deadLetters: DeadLetterDestination?
    public var keyPrefix = "tessera:"
    public var statsInterval: Duration? = .seconds(5)
    public var maxMessageBytes = 1 << 20
    /// Offline files and checkpoint state waiting for the storage thread beyond this stop
    /// consumption until it catches up.
    public var maxPendingStorageBytes = 2 << 30
    public var batchSize = 8_192
    /// What happens to a partition whose last `badPartitionThreshold` events were all rejected.
    public var badPartitionPolicy = BadPartitionPolicy.keepGoing
    public var badPartitionThreshold = 10_000
    /// Called on the worker thread after every poll, with the counters so far.
    public var onProgress: (@Sendable (WorkerStats) -> Void)?
    /// Updated between polls for health and readiness endpoints.
    public var health: WorkerHealth?

    public init(topologies: [Topology], brokers: String, redis: RedisEndpoint, offlineDirectory: String) {
        self.topologies = topologies
        self.brokers = brokers
        self.redis = redis
        self.offlineDirectory = offlineDirectory
    }
}

/// What the worker does with a partition that yields only bad events (all dead-lettered).
public enum BadPartitionPolicy: String, Sendable, CaseIterable {
    /// Dead-letter them and go on (the default): one broken producer does not stop the others.
    case keepGoing = "keep-going"
    /// Stop fetching that partition until the worker restarts; the others go on.
    case pause
    /// Stop the worker with an error.
    case stop
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
    /// Dead-lettered events per reason (`DeadLetterReason` raw values).
    public var deadLetterReasons: [String: Int] = [:]
    /// What the worker is waiting for and retrying (Redis unreachable, the offline log not
    /// writable, Kafka brokers down), or nil when all is well.
    public var retrying: String?
    /// Partitions paused under `BadPartitionPolicy.pause`.
    public var paused: [TopicPartition] = []

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
    /// Writes offline files and checkpoints off the worker's thread, in order.
    let storage: DurableWriter
    let metrics = WorkerMetrics()
    let sources: [Source]
    /// Views per source index.
    let views: [[FeatureView]]
    var partitions: [TopicPartition: PartitionWorker] = [:]
    public private(set) var stats = WorkerStats()
    /// An error met inside a rebalance callback that must stop the worker.
    private var fatal: WorkerError?
    /// What the worker is retrying, if anything (reported in the stats line).
    private var retrying: String?
    private var totalPartitions: Int?
    private var stopRequested: @Sendable () -> Bool = { false }
    /// Failed attempts per storage component (offline, checkpoint, dead_letters, kafka), for metrics.
    private var failures: [String: Int] = [:]
    private var checkpointsTaken = 0
    private var lastCheckpoint: ContinuousClock.Instant?
    /// Checkpoint rounds queued on the storage thread: per mark, when the round began and the
    /// offsets to commit (with the partition worker they belong to) once it is durable. A
    /// partition that changed hands since is not committed for (its new owner commits).
    private var pendingRounds: [Int: (started: ContinuousClock.Instant, commit: [TopicPartition: (Int64, PartitionWorker)])] = [:]
    private var nextMark = 0
    /// The storage thread's failing write last reported.
    private var storageTrouble: (task: String, error: String)?
    private var joined = false
    private var nextGauges = ContinuousClock.now
    /// What restoring checkpoints under a changed topology did (logged once, not per partition).
    private var restoreNotesLogged: Set<String> = []
    private var nextStats = ContinuousClock.now
    private var lastStats = (time: ContinuousClock.now, events: 0, writes: 0)

    /// One assigned partition: its pipeline and where its input and commits stand.
    final class PartitionWorker {
        let tp: TopicPartition
        let topicIndex: Int
        let pipeline: PartitionPipeline
        /// The source's name (the metrics' `source` label).
        let source: String
        var committedOffset: Int64 = -1
        var lag: Int64 = 0
        /// Records of the current poll.
        var batchRecords = 0
        var lastEvent = ContinuousClock.now
        var touched = false
        /// Events rejected in a row (for the bad-partition policy).
        var consecutiveBad = 0
        var partition: Int32 { tp.partition }

        init(tp: TopicPartition, topicIndex: Int, pipeline: PartitionPipeline, source: String) {
            self.tp = tp
            self.topicIndex = topicIndex
            self.pipeline = pipeline
            self.source = source
        }

        var labels: [(String, String)] { [("topic", tp.topic), ("partition", String(tp.partition))] }
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
        storage = DurableWriter(offline: offline, checkpoints: checkpoints)
        consumer.setListener(self)
        // Every counter is exported from the start, at 0.
        for source in sources {
            for name in ["tessera_events_consumed_total", "tessera_events_aggregated_total", "tessera_events_late_total"] {
                metrics.add(name, [("source", source.name)], 0)
            }
            for reason in DeadLetterReason.allCases { metrics.add("tessera_events_dead_lettered_total", [("source", source.name), ("reason", reason.rawValue)], 0) }
        }
        for view in allViews {
            metrics.add("tessera_emissions_total", [("view", view.name)], 0)
            if view.offline { metrics.add("tessera_offline_rows_total", [("view", view.name)], 0) }
            if view.online { metrics.add("tessera_redis_writes_total", [("view", view.name)], 0) }
        }
        for component in ["redis", "kafka", "offline", "checkpoint", "dead_letters"] { metrics.add("tessera_errors_total", [("component", component)], 0) }
        for name in ["tessera_redis_commands_total", "tessera_checkpoints_total", "tessera_commits_total"] { metrics.add(name, [], 0) }
    }

    /// The partition worker of a record's topic index and partition.
    private func lookup(topic: Int, partition: Int32) -> PartitionWorker? {
        partitions[TopicPartition(consumer.topics[topic], partition)]
    }

    deinit {
        online.stop()
        storage.stop()
    }

    // MARK: - Rebalances

    /// A partition joins this worker: restore its checkpoint (state, offset, offline-log position),
    /// remove offline files written after that checkpoint, and resume at its offset. Without a
    /// checkpoint the partition starts empty from the beginning of the topic and its offline files
    /// are rebuilt. A checkpoint that cannot be used stops the worker: guessing would count twice.
    public func assigned(_ tps: [TopicPartition]) -> [TopicPartition: Int64] {
        joined = true
        // Nothing of an earlier ownership may be written over what recovery restores (a revoke
        // waits for its writes; partitions lost without one may still have some queued).
        storage.discard(partitions: Set(tps.map(\.partition)))
        var starts: [TopicPartition: Int64] = [:]
        for tp in tps {
            guard let s = sources.firstIndex(where: { $0.topic == tp.topic }) else { continue }
            let source = sources[s]
            let specs = views[s].map(\.spec)
            var core = PartitionAggregator(views: specs, allowedLateness: source.allowedLateness)
            var lastCreated: Micros = 0
            if let checkpoints {
                do {
                    let saved = try checkpoints.load(tp)
                    if let saved {
                        core = try PartitionAggregator(views: specs, allowedLateness: source.allowedLateness, restoring: saved.state)
                        for note in core.restoreNotes where restoreNotesLogged.insert(note).inserted { logger.notice("\(note)") }
                        starts[tp] = saved.nextOffset
                        lastCreated = saved.lastCreated
                    } else {
                        starts[tp] = 0
                    }
                    let removed = try offline.recover(partition: tp.partition, nextSequences: saved?.nextSequences ?? [:])
                    logger.info("partition restored", metadata: ["partition": "\(tp)", "offset": "\(starts[tp]!)",
                                                                 "checkpoint": "\(saved != nil)", "offline_files_trimmed": "\(removed)"])
                } catch {
                    fatal = fatal ?? WorkerError("cannot resume \(tp) from \(checkpoints.path(tp)): \(error)")
                    continue
                }
            }
            let pipeline = PartitionPipeline(topic: tp.topic, partition: tp.partition, source: source, views: views[s], core: core,
                                             maxMessageBytes: options.maxMessageBytes)
            pipeline.lastCreated = lastCreated
            let worker = PartitionWorker(tp: tp, topicIndex: consumer.topics.firstIndex(of: tp.topic) ?? 0, pipeline: pipeline, source: source.name)
            if let start = starts[tp] { pipeline.nextOffset = start; worker.committedOffset = start }
            partitions[tp] = worker
        }
        return starts
    }

    /// A partition leaves this worker: make it durable, checkpoint it and commit, for its next
    /// owner to resume exactly there.
    public func revoked(_ tps: [TopicPartition]) {
        let numbers = Set(tps.map(\.partition))
        do {
            try makeDurable(partitions: numbers, checkpoint: true, wait: true)
        } catch {
            logger.error("could not checkpoint revoked partitions \(tps.sorted()): \(error); their next owner replays from the last checkpoint")
            online.discard(partitions: numbers)
            offline.discard(partitions: numbers)
            storage.discard(partitions: numbers)
        }
        for tp in tps {
            if let p = partitions[tp] {
                publishEmissions(p)
                metrics.remove("tessera_partition_lag", p.labels)
                metrics.remove("tessera_partition_watermark_seconds", p.labels)
            }
            partitions[tp] = nil
        }
    }

    /// A partition's checkpoint as of now (its state serialized), or nil when it has nothing to save.
    private func checkpoint(_ tp: TopicPartition) -> CheckpointStore.Checkpoint? {
        guard checkpoints != nil, let p = partitions[tp]?.pipeline, p.nextOffset >= 0 else { return nil }
        return .init(nextOffset: p.nextOffset, lastCreated: p.lastCreated,
                     nextSequences: offline.nextSequences(partition: tp.partition), state: p.core.unsealedState(), sealed: false)
    }

    // MARK: - The loop

    /// Runs until `shouldStop()` is true (or, with `untilEnd`, until every partition is drained),
    /// then flushes, commits, checkpoints and leaves the group.
    public func run(shouldStop: @escaping @Sendable () -> Bool) throws -> WorkerStats {
        stopRequested = shouldStop
        defer {
            storage.stop()
            options.health?.update { $0.stopped = true }
        }
        lastCheckpoint = .now  // the age of the state the worker resumed from counts from here
        let clock = ContinuousClock()
        var nextFlush = clock.now + options.flushInterval
        var nextRoll = clock.now + options.rollInterval
        var nextCheckpoint = clock.now + options.checkpointInterval
        nextStats = clock.now + (options.statsInterval ?? .zero)
        lastStats = (clock.now, 0, 0)
        var sawAssignment = false
        var drainedSince: ContinuousClock.Instant?
        while !shouldStop() {
            try consumer.poll(timeout: 50) { records in try self.process(records) }
            if !consumer.assignment.isEmpty { sawAssignment = true }
            let now = clock.now
            if now >= nextFlush {
                try online.flushIfIdle()
                nextFlush = now + options.flushInterval
            }
            if let fatal { throw fatal }
            try checkStorage()
            if now >= nextCheckpoint {
                try makeDurable(partitions: nil, checkpoint: true, wait: false)
                nextCheckpoint = now + options.checkpointInterval
                nextRoll = now + options.rollInterval
            } else if now >= nextRoll {
                try makeDurable(partitions: nil, checkpoint: false, wait: false)
                nextRoll = now + options.rollInterval
            }
            if let idle = options.idleTimeout, !options.untilEnd { advanceIdle(after: idle) }
            report()
            if options.untilEnd && sawAssignment && drained(since: &drainedSince) { break }
        }
        if options.untilEnd {
            // The input is drained: close the rows still open at each partition's stream time.
            for p in partitions.values {
                stats.emissions += p.pipeline.finish(online: online, offline: offline)
            }
        }
        try makeDurable(partitions: nil, checkpoint: true, wait: true)
        refreshStats()
        updateLag()
        publishMetrics(gauges: true)
        consumer.close()
        if let fatal { throw fatal }
        online.stop()
        return stats
    }

    /// Brings the counters up to date, prints the stats line when it is due and tells
    /// `onProgress`. Called between polls and while waiting for Redis or storage.
    private func report() {
        refreshStats()
        let now = ContinuousClock.now
        publishMetrics(gauges: now >= nextGauges)
        if now >= nextGauges { nextGauges = now + .seconds(1) }
        if let interval = options.statsInterval, now >= nextStats {
            updateLag()
            let seconds = (now - lastStats.time) / .seconds(1)
            let rate = Double(stats.events - lastStats.events) / seconds
            let writes = Double(stats.redisWrites - lastStats.writes) / seconds
            var line = "\(Int(rate)) events/s | lag \(stats.lag) | late \(stats.late) | dead-lettered \(stats.deadLettered)"
            if !stats.deadLetterReasons.isEmpty {
                line += " (" + stats.deadLetterReasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
            }
            line += " | Redis \(Int(writes)) writes/s | offline \(stats.offlineRows) rows"
            if !stats.paused.isEmpty { line += " | paused \(stats.paused.map(\.description).joined(separator: ","))" }
            if let trouble = stats.retrying { line += " | retrying: \(trouble)" }
            logger.info("\(line)")
            lastStats = (now, stats.events, stats.redisWrites)
            nextStats = now + interval
        }
        options.onProgress?(stats)
    }

    /// Counters from the running totals, lag and watermarks; with `gauges`, also memory and health.
    private func publishMetrics(gauges: Bool) {
        for p in partitions.values { publishEmissions(p) }
        for (view, n) in offline.rowsWritten { metrics.total("tessera_offline_rows_total", [("view", view)], n) }
        for (view, n) in online.writesByView { metrics.total("tessera_redis_writes_total", [("view", view)], n) }
        metrics.total("tessera_redis_commands_total", [], stats.redisCommands)
        metrics.total("tessera_errors_total", [("component", "redis")], online.failures)
        metrics.total("tessera_errors_total", [("component", "kafka")], consumer.transientErrors + (failures["kafka"] ?? 0))
        for (component, n) in failures.merging(storage.failureCounts, uniquingKeysWith: +) where component != "kafka" {
            metrics.total("tessera_errors_total", [("component", component)], n)
        }
        metrics.total("tessera_checkpoints_total", [], checkpointsTaken)
        metrics.total("tessera_commits_total", [], stats.commits)
        updateLag()
        for p in partitions.values {
            metrics.set("tessera_partition_lag", p.labels, Double(p.lag))
            let t = p.pipeline.core.streamTime
            if t != .min { metrics.set("tessera_partition_watermark_seconds", p.labels, Double(t - p.pipeline.core.allowedLateness) / 1_000_000) }
        }
        metrics.set("tessera_partitions_assigned", [], Double(partitions.count))
        guard gauges else { return }
        if let lastCheckpoint { metrics.set("tessera_checkpoint_age_seconds", [], (ContinuousClock.now - lastCheckpoint) / .seconds(1)) }
        metrics.set("tessera_retrying", [], stats.retrying == nil ? 0 : 1)
        metrics.set("tessera_process_resident_memory_bytes", [], WorkerMetrics.residentBytes())
        if let health = options.health {
            let (joined, count, lag, retrying) = (self.joined, partitions.count, stats.lag, stats.retrying)
            health.update { s in
                s.lastReport = .now
                s.joined = joined
                s.partitions = count
                s.lag = lag
                s.retrying = retrying
            }
            metrics.set("tessera_ready", [], health.isReady ? 1 : 0)
        }
    }

    private func publishEmissions(_ p: PartitionWorker) {
        for (v, n) in p.pipeline.emitted.enumerated() where n > 0 {
            metrics.add("tessera_emissions_total", [("view", p.pipeline.views[v].name)], n)
            p.pipeline.emitted[v] = 0
        }
    }

    private func refreshStats() {
        stats.partitions = partitions.count
        stats.redisWrites = online.writes
        stats.redisCommands = online.commands
        stats.deadLettered = deadLetters.total
        stats.offlineRows = offline.rowsWrittenTotal
        if stats.deadLettered > 0 {
            for (reason, n) in deadLetters.counts { stats.deadLetterReasons[reason.rawValue] = n }
        }
        stats.paused = consumer.paused.sorted()
        if online.isRetrying {
            stats.retrying = "Redis unreachable"
        } else if let retrying {
            stats.retrying = "cannot \(retrying)"
        } else if let kafka = consumer.lastTransientError, ContinuousClock.now - kafka.at < .seconds(10) {
            stats.retrying = "Kafka \(kafka.error.message)"
        } else {
            stats.retrying = nil
        }
    }

    /// Whether an `--until-end` run is done: every assigned partition is at its end, and either
    /// this worker holds every partition of its topics, or its assignment has stayed drained for
    /// `untilEndSettle` (other members hold the rest; a member that died keeps its partitions
    /// until its session times out, and they must not be mistaken for drained).
    private func drained(since: inout ContinuousClock.Instant?) -> Bool {
        let assignment = consumer.assignment
        guard !assignment.isEmpty, consumer.atEnd.union(consumer.paused).isSuperset(of: assignment) else {
            since = nil
            return false
        }
        if totalPartitions == nil {
            let counts = consumer.topics.map { consumer.partitionCount(topic: $0) }
            if counts.allSatisfy({ $0 != nil }) { totalPartitions = counts.reduce(0) { $0 + $1! } }
        }
        if let total = totalPartitions, assignment.count >= total { return true }
        let now = ContinuousClock.now
        if since == nil { since = now }
        return now - since! >= options.untilEndSettle
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
            p.batchRecords += 1
            if let rejection = p.pipeline.decode(r.payload, offset: r.offset, record: index) {
                try deadLetters.record(topic: p.tp.topic, partition: p.tp.partition, offset: r.offset, rejection: rejection, payload: r.payload)
                metrics.add("tessera_events_dead_lettered_total", [("source", p.source), ("reason", rejection.reason.rawValue)], 1)
                p.consecutiveBad += 1
            } else {
                p.consecutiveBad = 0
            }
        }
        metrics.batchSize.record(records.count)
        for p in touched {
            p.touched = false
            metrics.add("tessera_events_consumed_total", [("source", p.source)], p.batchRecords)
            p.batchRecords = 0
        }
        for p in touched where p.pipeline.pending > 0 {
            let outcome = p.pipeline.aggregate(online: online, offline: offline)
            var late = 0
            for (record, offset, reason) in outcome.rejected {
                if case .late = reason { late += 1 }
                let rejection = Rejection(reason)
                try deadLetters.record(topic: p.tp.topic, partition: p.tp.partition, offset: offset,
                                       rejection: rejection, payload: records[record].payload)
                metrics.add("tessera_events_dead_lettered_total", [("source", p.source), ("reason", rejection.reason.rawValue)], 1)
            }
            stats.late += late
            metrics.add("tessera_events_late_total", [("source", p.source)], late)
            metrics.add("tessera_events_aggregated_total", [("source", p.source)], outcome.aggregated)
            stats.aggregated += outcome.aggregated
            stats.emissions += outcome.closed
            if outcome.aggregated == 0 { p.consecutiveBad += outcome.rejected.count }
            p.lastEvent = .now
        }
        if options.badPartitionPolicy != .keepGoing {
            for p in touched where p.consecutiveBad >= options.badPartitionThreshold && !consumer.paused.contains(p.tp) {
                let message = "\(p.tp) yielded \(p.consecutiveBad) bad events in a row (dead-lettered with their reasons)"
                if options.badPartitionPolicy == .stop {
                    fatal = fatal ?? WorkerError("\(message); stopping (--bad-partition stop). Fix the producer, or run with --bad-partition keep-going")
                } else {
                    logger.error("\(message); pausing it until the worker restarts (--bad-partition pause)")
                    try consumer.pause([p.tp])
                }
            }
        }
    }

    /// Advances the stream time of partitions idle for `idle` to the wall clock minus `idle`.
    private func advanceIdle(after idle: Duration) {
        let now = ContinuousClock.now
        for p in partitions.values where now - p.lastEvent >= idle {
            let wall = Int64(Date().timeIntervalSince1970 * 1_000_000) - Int64(idle / .microseconds(1))
            stats.emissions += p.pipeline.advance(to: wall, online: online, offline: offline)
            p.lastEvent = now
        }
    }

    /// Makes every emission so far durable in both sinks; with `checkpoint`, then checkpoints the
    /// partitions and commits the offsets behind the checkpoints (never ahead of one).
    private func makeDurable(partitions only: Set<Int32>?, checkpoint: Bool, wait: Bool) throws {
        try online.flush(whileWaiting: { self.report() }, giveUp: stopRequested)
        try withBackoff("write dead letters", component: "dead_letters") {
            do { try deadLetters.flush() } catch let e as any RetriableError { throw e } catch { throw StorageError("\(error)") }
        }
        if checkpoint && !pendingRounds.isEmpty {
            // One checkpoint round at a time: the state is not serialized again while the last
            // copy still waits to be written.
            try awaitStorage()
        }
        var jobs = offline.detach(partitions: only).map { DurableWriter.Job.offline($0) }
        if checkpoint {
            let started = ContinuousClock.now
            var commit: [TopicPartition: (Int64, PartitionWorker)] = [:]
            for tp in partitions.keys.sorted() where only?.contains(tp.partition) ?? true {
                if let c = self.checkpoint(tp) { jobs.append(.checkpoint(tp, c)) }
                if let p = partitions[tp], p.pipeline.nextOffset > p.committedOffset { commit[tp] = (p.pipeline.nextOffset, p) }
            }
            pendingRounds[nextMark] = (started, commit)
            jobs.append(.mark(nextMark))
            nextMark += 1
        }
        storage.enqueue(jobs)
        if wait {
            try awaitStorage()
        } else if storage.pendingBytes > options.maxPendingStorageBytes {
            try awaitStorage()  // the disk is slower than the stream: stop consuming until it catches up
        }
    }

    /// Between polls: commits behind the checkpoint rounds the storage thread has finished, and
    /// stops consuming (waiting, reporting) while one of its writes fails.
    private func checkStorage() throws {
        try finishRounds()
        if storage.currentTrouble != nil { try awaitStorage() }
    }

    /// Waits until everything handed to the storage thread is durable, reporting meanwhile (and
    /// any write it is retrying); then commits behind the finished checkpoint rounds.
    private func awaitStorage() throws {
        while !storage.waitUntilIdle(timeout: .milliseconds(100)) {
            if let trouble = storage.currentTrouble {
                if storageTrouble?.task != trouble.task || storageTrouble?.error != trouble.error {
                    logger.warning("cannot \(trouble.task), retrying: \(trouble.error)")
                    storageTrouble = (trouble.task, trouble.error)
                }
                retrying = trouble.task
            }
            if stopRequested() {
                let what = retrying ?? "write the offline log and checkpoints"
                storage.stop()
                throw WorkerError("stopped while trying to \(what)")
            }
            report()
        }
        if storageTrouble != nil {
            retrying = nil
            storageTrouble = nil
        }
        try finishRounds()
    }

    /// Commits the offsets of every checkpoint round now durable (for partitions still owned by
    /// the same partition worker that queued them).
    private func finishRounds() throws {
        for mark in storage.takeFinishedMarks() {
            guard let round = pendingRounds.removeValue(forKey: mark) else { continue }
            if checkpoints != nil {
                checkpointsTaken += 1
                lastCheckpoint = .now
                metrics.checkpointDuration.recordNanoseconds(Int64((ContinuousClock.now - round.started) / .nanoseconds(1)))
            }
            var commit: [TopicPartition: Int64] = [:]
            for (tp, (offset, worker)) in round.commit where partitions[tp] === worker && offset > worker.committedOffset {
                commit[tp] = offset
            }
            try commitOffsets(commit)
        }
    }

    private func commitOffsets(_ commit: [TopicPartition: Int64]) throws {
        guard !commit.isEmpty else { return }
        do {
            try withBackoff("commit offsets", component: "kafka") { try consumer.commit(commit) }
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
    private func withBackoff(_ what: String, component: String, _ body: () throws -> Void) throws {
        var delay = 0.05
        while true {
            do {
                try body()
                if retrying == what { retrying = nil }
                return
            } catch let e as any RetriableError where e.isRetriable {
                logger.warning("cannot \(what), retrying in \(delay) s: \(e)")
                retrying = what
                failures[component, default: 0] += 1
            }
            if stopRequested() { throw WorkerError("stopped while trying to \(what)") }
            let until = Date().addingTimeInterval(delay)
            while Date() < until && !stopRequested() {
                report()
                Thread.sleep(forTimeInterval: min(0.25, until.timeIntervalSinceNow))
            }
            delay = min(5, delay * 2)
        }
    }

    private func updateLag() {
        var lag: Int64 = 0
        for (tp, p) in partitions {
            if let high = consumer.highWatermark(tp), p.pipeline.nextOffset >= 0 { p.lag = max(0, high - p.pipeline.nextOffset) }
            lag += p.lag
        }
        stats.lag = lag
    }
}

public struct WorkerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// An error that may go away by itself (a server down, a full disk): the worker retries it
/// with backoff instead of stopping.
public protocol RetriableError: Error {
    var isRetriable: Bool { get }
}

extension RedisError: RetriableError {}
extension KafkaError: RetriableError {}

/// Writing the offline log, a checkpoint or dead letters failed (disk full, directory not
/// writable): retried until the operator fixes it.
public struct StorageError: RetriableError, CustomStringConvertible {
    public var description: String
    public var isRetriable: Bool { true }
    public init(_ description: String) { self.description = description }
}
