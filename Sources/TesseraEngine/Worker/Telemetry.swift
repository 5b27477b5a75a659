import Logging
import Metrics
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline
import TesseraSource
import TesseraTopology

/// Counters of a run, for the stats line and for callers.
public struct WorkerStats: Sendable {
    public var events = 0
    public var aggregated = 0
    public var late = 0
    public var deadLettered = 0
    /// Closed rows (what the offline log receives).
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
    /// Mis-keyed events (`key_mismatch`, `null_key`) dead-lettered or, under `key_mismatch:
    /// accept`, aggregated anyway.
    public var misKeyed = 0
    /// What the worker is waiting for and retrying (Redis unreachable, the offline log not
    /// writable, Kafka brokers down), or nil when all is well.
    public var retrying: String?
    /// Current rows written to Redis again because it had lost them.
    public var onlineRowsRewritten = 0
    /// Entities whose Redis row, read back after a flush, was not their current row.
    public var onlineMismatches = 0
    /// Partitions paused under `BadPartitionPolicy.pause`.
    public var paused: [TopicPartition] = []
    /// The longest iteration of the worker loop so far, the longest stop to hand a partition's
    /// state over for a checkpoint, and the longest a partition's records were held back while
    /// its state was written to its checkpoint file (µs).
    public var longestLoopMicros: Int64 = 0
    public var longestCheckpointPauseMicros: Int64 = 0
    public var longestCheckpointHoldMicros: Int64 = 0

    public init() {}
}

/// What the worker tells its operator: the counters (`WorkerStats`), the metrics
/// (`MetricName`), the stats line, health and readiness, and the progress callback. The
/// pipelines' counts arrive as they are taken (`took`); the writers' running totals are read
/// when a report is due (`report`), not on every poll.
final class Telemetry {
    private let logger: Logger
    private let metrics = WorkerMetrics()
    private let quality: QualityMonitor
    private let statsInterval: Duration?
    private let health: WorkerHealth?
    private let onProgress: (@Sendable (WorkerStats) -> Void)?
    private(set) var stats = WorkerStats()
    /// What the worker is retrying, if anything (reported in the stats line and /ready).
    var retrying: String?
    /// What else the worker is doing instead of polling, if anything (reported the same way).
    var busy: String?
    /// Failed attempts per component (`MetricName.components`) met by the worker thread.
    private var failures: [String: Int] = [:]
    private var checkpointsTaken = 0
    private(set) var lastCheckpoint: ContinuousClock.Instant = .now
    private var joined = false
    private var nextRefresh = ContinuousClock.now
    private var nextGauges = ContinuousClock.now
    private var nextStats = ContinuousClock.now
    private var lastStats = (time: ContinuousClock.now, events: 0, writes: 0)

    /// Where the running totals come from.
    struct Sources {
        var online: OnlineWriter
        var offline: OfflineLog
        var deadLetters: DeadLetterSink
        var consumer: KafkaConsumer
        var storage: DurableWriter
        var table: PartitionTable
    }
    var sources: Sources?

    init(configuration: WorkerConfiguration, logger: Logger, health: WorkerHealth?, onProgress: (@Sendable (WorkerStats) -> Void)?) {
        self.logger = logger
        self.health = health
        self.onProgress = onProgress
        statsInterval = configuration.options.statsInterval
        quality = QualityMonitor(views: configuration.allViews, metrics: metrics)
        freshness = WorkerMetrics.freshness(configuration.allViews)
        nextStats = .now + (statsInterval ?? .zero)
        // Every counter is exported from the start, at 0.
        for source in configuration.sources {
            for name in [MetricName.eventsConsumed, MetricName.eventsAggregated, MetricName.eventsLate] {
                metrics.add(name, [("source", source.name)], 0)
            }
            for reason in DeadLetterReason.allCases {
                metrics.add(MetricName.eventsDeadLettered, [("source", source.name), ("reason", reason.rawValue)], 0)
            }
            for reason in Telemetry.misKeyedReasons {
                metrics.add(MetricName.eventsMisKeyedAccepted, [("source", source.name), ("reason", reason.rawValue)], 0)
            }
        }
        for view in configuration.allViews {
            metrics.add(MetricName.emissions, [("view", view.name)], 0)
            if view.offline { metrics.add(MetricName.offlineRows, [("view", view.name)], 0) }
            if view.online {
                metrics.add(MetricName.redisWrites, [("view", view.name)], 0)
                metrics.add(MetricName.onlineRowsRewritten, [("view", view.name)], 0)
            }
        }
        for component in MetricName.components { metrics.add(MetricName.errors, [("component", component)], 0) }
        for name in [MetricName.redisCommands, MetricName.checkpoints, MetricName.commits, MetricName.onlineLosses,
                     MetricName.onlineSampled, MetricName.onlineMismatches] { metrics.add(name, [], 0) }
        if configuration.sources.contains(where: { $0.schemaRegistry != nil }) {
            for result in ["found", "missing"] { metrics.add(MetricName.schemaFetches, [("result", result)], 0) }
        }
    }

    /// Per online view, its freshness metrics (the online writer records them).
    let freshness: [String: FreshnessRecorders]

    // MARK: - Events

    func polled(records: Int) {
        stats.events += records
        if records > 0 { metrics.batchSize.record(records) }
    }

    /// A pipeline's counts since they were last taken.
    func took(_ c: PartitionPipeline.Counters, from p: PartitionPipeline) {
        let source = [("source", p.source)]
        metrics.add(MetricName.eventsConsumed, source, c.consumed)
        metrics.add(MetricName.eventsAggregated, source, c.aggregated)
        metrics.add(MetricName.eventsLate, source, c.late)
        for (reason, n) in c.rejected { metrics.add(MetricName.eventsDeadLettered, source + [("reason", reason.rawValue)], n) }
        for (v, n) in c.emitted.enumerated() where n > 0 { metrics.add(MetricName.emissions, [("view", p.views[v].name)], n) }
        stats.aggregated += c.aggregated
        stats.late += c.late
        stats.emissions += c.closed
        let misKeyed = Telemetry.misKeyedReasons.reduce(0) { $0 + c.rejected[$1, default: 0] + c.acceptedMisKeyed[$1, default: 0] }
        if misKeyed > 0 { self.misKeyed(misKeyed, counters: c, from: p) }
    }

    static let misKeyedReasons: [DeadLetterReason] = [.keyMismatch, .nullKey]
    /// Mis-keyed events since the last warning, per source, and when that was.
    private var misKeyedSince: [String: (count: Int, warned: ContinuousClock.Instant?)] = [:]

    /// Counts mis-keyed events and warns about them, at most once a minute per source: their
    /// producer partitions by something else than the entity, which splits its state.
    private func misKeyed(_ n: Int, counters c: PartitionPipeline.Counters, from p: PartitionPipeline) {
        stats.misKeyed += n
        for (reason, k) in c.acceptedMisKeyed { metrics.add(MetricName.eventsMisKeyedAccepted, [("source", p.source), ("reason", reason.rawValue)], k) }
        var entry = misKeyedSince[p.source] ?? (0, nil)
        entry.count += n
        let now = ContinuousClock.now
        if entry.warned.map({ now - $0 >= .seconds(60) }) ?? true {
            let action = c.acceptedMisKeyed.isEmpty ? "dead-lettered" : "aggregated anyway (key_mismatch: accept)"
            logger.warning("\(entry.count) mis-keyed events on \(p.topic): their record key is not their key field, or absent; \(action). The producer must key the topic by the entity, or the entity's state splits across partitions")
            entry = (0, now)
        }
        misKeyedSince[p.source] = entry
    }

    /// A partition's current rows, rewritten because Redis lost them.
    func rewrote(_ rows: [String: Int]) {
        metrics.add(MetricName.onlineLosses, [], 1)
        for (view, n) in rows {
            metrics.add(MetricName.onlineRowsRewritten, [("view", view)], n)
            stats.onlineRowsRewritten += n
        }
    }

    /// Entities whose online row was read back, and how many were not their current row.
    func sampledOnline(_ n: Int, mismatches: Int) {
        metrics.add(MetricName.onlineSampled, [], n)
        metrics.add(MetricName.onlineMismatches, [], mismatches)
        stats.onlineMismatches += mismatches
    }

    func joinedGroup() { joined = true }

    func failed(_ component: String) { failures[component, default: 0] += 1 }

    func committed() { stats.commits += 1 }

    func checkpointed(started: ContinuousClock.Instant) {
        checkpointsTaken += 1
        lastCheckpoint = .now
        metrics.checkpointDuration.recordNanoseconds(Int64((ContinuousClock.now - started) / .nanoseconds(1)))
    }

    /// One iteration of the worker loop ended.
    func iterated(_ took: Duration) {
        let ns = Int64(took / .nanoseconds(1))
        metrics.loopIteration.recordNanoseconds(ns)
        stats.longestLoopMicros = max(stats.longestLoopMicros, ns / 1_000)
    }

    /// The worker handed a partition's state over for a checkpoint.
    func paused(forCheckpoint took: Duration) {
        let ns = Int64(took / .nanoseconds(1))
        metrics.checkpointPause.recordNanoseconds(ns)
        stats.longestCheckpointPauseMicros = max(stats.longestCheckpointPauseMicros, ns / 1_000)
    }

    /// A partition's records were held back this long while its state was written to its checkpoint file.
    func held(forCheckpoint took: Duration) {
        let ns = Int64(took / .nanoseconds(1))
        metrics.checkpointHold.recordNanoseconds(ns)
        stats.longestCheckpointHoldMicros = max(stats.longestCheckpointHoldMicros, ns / 1_000)
    }

    /// A partition left this worker: its gauges stop.
    func partitionGone(_ tp: TopicPartition) {
        let labels = Self.labels(tp)
        metrics.remove(MetricName.partitionLag, labels)
        metrics.remove(MetricName.partitionWatermark, labels)
    }

    func stopped() { health?.update { $0.stopped = true } }

    // MARK: - Reports

    /// Brings the counters up to date when due (or `now`), prints the stats line when it is
    /// due and tells `onProgress`. Called between polls and while waiting for Redis or storage.
    func report(now force: Bool = false) {
        let now = ContinuousClock.now
        guard force || now >= nextRefresh else { return }
        nextRefresh = now + .milliseconds(50)
        refresh()
        publish(gauges: force || now >= nextGauges)
        if now >= nextGauges { nextGauges = now + .seconds(1) }
        if let interval = statsInterval, now >= nextStats {
            logger.info("\(statsLine(now: now))")
            lastStats = (now, stats.events, stats.redisWrites)
            nextStats = now + interval
        }
        onProgress?(stats)
    }

    private func statsLine(now: ContinuousClock.Instant) -> String {
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
        return line
    }

    /// The running totals of the writers, the dead letters, the consumer and the partitions.
    private func refresh() {
        guard let s = sources else { return }
        stats.partitions = s.table.count
        stats.redisWrites = s.online.writes
        stats.redisCommands = s.online.commands
        stats.deadLettered = s.deadLetters.total
        stats.offlineRows = s.offline.rowsWrittenTotal
        if stats.deadLettered > 0 {
            for (reason, n) in s.deadLetters.counts { stats.deadLetterReasons[reason.rawValue] = n }
        }
        stats.paused = s.consumer.paused.sorted()
        if s.online.isRetrying {
            stats.retrying = "Redis unreachable"
        } else if let retrying {
            stats.retrying = "cannot \(retrying)"
        } else if let kafka = s.consumer.lastTransientError, ContinuousClock.now - kafka.at < .seconds(10) {
            stats.retrying = "Kafka \(kafka.error.message)"
        } else if let busy {
            stats.retrying = busy
        } else if !s.consumer.missingTopics.isEmpty {
            stats.retrying = "topic \(s.consumer.missingTopics.sorted().joined(separator: ", ")) to exist"
        } else {
            stats.retrying = nil
        }
        stats.lag = s.table.updateLag(s.consumer)
    }

    /// Counters from the running totals, lag and watermarks; with `gauges`, also memory and health.
    private func publish(gauges: Bool) {
        guard let s = sources else { return }
        for (view, n) in s.offline.rowsWritten { metrics.total(MetricName.offlineRows, [("view", view)], n) }
        for (view, n) in s.online.writesByView { metrics.total(MetricName.redisWrites, [("view", view)], n) }
        metrics.total(MetricName.redisCommands, [], stats.redisCommands)
        var errors = failures.merging(s.storage.failureCounts, uniquingKeysWith: +)
        errors["redis", default: 0] += s.online.failures
        errors["kafka", default: 0] += s.consumer.transientErrors
        for (component, n) in errors { metrics.total(MetricName.errors, [("component", component)], n) }
        metrics.total(MetricName.checkpoints, [], checkpointsTaken)
        metrics.total(MetricName.commits, [], stats.commits)
        for e in s.table.entries {
            let labels = Self.labels(e.tp)
            metrics.set(MetricName.partitionLag, labels, Double(e.lag))
            let t = e.pipeline.core.streamTime
            if t != .min {
                metrics.set(MetricName.partitionWatermark, labels, Double(t - e.pipeline.core.allowedLateness) / 1_000_000)
            }
        }
        metrics.set(MetricName.partitionsAssigned, [], Double(s.table.count))
        if !s.table.registries.isEmpty {
            let schemas = s.table.registries.stats
            metrics.total(MetricName.schemaFetches, [("result", "found")], schemas.fetched)
            metrics.total(MetricName.schemaFetches, [("result", "missing")], schemas.missing)
            metrics.set(MetricName.schemasCached, [], Double(schemas.fetched + schemas.missing))
        }
        guard gauges else { return }
        quality.publish(pipelines: s.table.entries.map(\.pipeline))
        metrics.set(MetricName.checkpointAge, [], (ContinuousClock.now - lastCheckpoint) / .seconds(1))
        metrics.set(MetricName.retrying, [], stats.retrying == nil ? 0 : 1)
        metrics.set(MetricName.residentMemory, [], WorkerMetrics.residentBytes())
        if let health {
            let (joined, count, lag, retrying) = (self.joined, stats.partitions, stats.lag, stats.retrying)
            health.update { h in
                h.lastReport = .now
                h.joined = joined
                h.partitions = count
                h.lag = lag
                h.retrying = retrying
            }
            metrics.set(MetricName.ready, [], health.isReady ? 1 : 0)
        }
    }

    private static func labels(_ tp: TopicPartition) -> [(String, String)] {
        [("topic", tp.topic), ("partition", String(tp.partition))]
    }
}
