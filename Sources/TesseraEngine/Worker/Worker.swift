import Logging
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline
import TesseraRedis
import TesseraSource

/// The worker: Kafka → decode → aggregate → Redis and the offline log, with offsets committed
/// only behind durable output. Its parts, one job each:
///
///     KafkaConsumer ─records─▶ RecordRouter ─▶ PartitionPipeline (one per PartitionTable entry)
///                                  │ rejects        └─emissions─▶ OnlineWriter ─▶ Redis
///                                  ▼                              OfflineLog ──▶ DurableWriter ─▶ files
///                            DeadLetterSink                                  (storage thread)
///     CommitCoordinator: flush → checkpoint → commit behind the checkpoint
///     Lifecycle: what state the worker is in and what each event makes it do
///     Telemetry: counters, metrics, the stats line, health
///
/// Not Sendable: it lives on the one thread that calls `run` (`WorkerService` gives it one);
/// rebalances arrive inside `poll`, on that thread.
public final class Worker: RebalanceListener {
    public let configuration: WorkerConfiguration
    package let lifecycle = Lifecycle()
    private let logger: Logger
    private let clock: any WallClock
    private let consumer: KafkaConsumer
    private let online: OnlineWriter
    private let offline: OfflineLog
    private let router: RecordRouter
    /// Writes offline files and checkpoints off the worker's thread, in order.
    private let storage: DurableWriter
    /// Writes the checkpoints' states off the worker's thread.
    private let snapshots = SnapshotTaker()
    private let table: PartitionTable
    private let checkpoints: CheckpointStore?
    private let coordinator: CommitCoordinator
    private let telemetry: Telemetry
    /// An error met inside a rebalance callback (or by the bad-partition policy) that stops the worker.
    private var fatal: EngineError?
    private var totalPartitions: Int?
    /// When the newest record of the last poll was produced (ms since the epoch; -1: none polled,
    /// or none with a timestamp).
    private var newestProduced: Int64 = -1
    /// Set once the stop's final checkpoint round is durable: leaving the group then revokes
    /// partitions with nothing new to checkpoint.
    private var finalRoundDone = false
    private var options: WorkerOptions { configuration.options }

    public init(configuration: WorkerConfiguration, logger: Logger, clock: any WallClock = SystemClock(),
                health: WorkerHealth? = nil, onProgress: (@Sendable (WorkerStats) -> Void)? = nil) throws {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        let options = configuration.options
        // Blocks of 1 MiB and more (an offline row group's columns, built here and freed on the
        // storage thread) get memory of their own, returned when freed: left to glibc's adaptive
        // threshold they come from arenas that keep them, ~300 MiB of resident memory on
        // `standard` for ~1 % of CPU (benchmarks/results/2026-12-05-rss/NOTES.md).
        returnLargeBlocksWhenFreed(from: 1 << 20)
        telemetry = Telemetry(configuration: configuration, logger: logger, health: health, onProgress: onProgress)
        consumer = try KafkaConsumer(brokers: options.brokers, group: options.group, topics: configuration.sources.map(\.topic),
                                     properties: options.kafkaProperties, reportEndOfPartition: options.untilEnd,
                                     batchSize: options.batchSize, logger: logger)
        online = OnlineWriter(layout: OnlineLayout(prefix: options.keyPrefix), connection: RedisConnection(endpoint: options.redis, logger: logger),
                              views: configuration.allViews, logger: logger, clock: clock, interval: options.flushInterval,
                              freshness: telemetry.freshness, group: options.group)
        offline = try OfflineLog(directory: options.offlineDirectory, views: configuration.allViews.filter(\.offline),
                                 rowGroupRows: options.offlineRowGroupRows)
        var producer: KafkaProducer?
        if case .topic = options.deadLetters {
            producer = try KafkaProducer(brokers: options.brokers, properties: options.kafkaProperties.filter { !$0.0.hasPrefix("group.") }, logger: logger)
        }
        let deadLetters = try DeadLetterSink(destination: options.deadLetters ?? .file("\(options.offlineDirectory)/_dead_letters.jsonl"),
                                             producer: producer)
        router = RecordRouter(deadLetters: deadLetters)
        let checkpoints = options.stateDirectory.map { CheckpointStore(stateDirectory: $0, group: options.group) }
        self.checkpoints = checkpoints
        storage = DurableWriter(offline: offline, checkpoints: checkpoints)
        table = try PartitionTable(configuration: configuration, topics: consumer.topics, checkpoints: checkpoints, offline: offline,
                               sinks: EmissionSinks(online: online, offline: offline), clock: clock, logger: logger)
        coordinator = CommitCoordinator(online: online, offline: offline, deadLetters: deadLetters, storage: storage, snapshots: snapshots, checkpoints: checkpoints,
                                        consumer: consumer, table: table, telemetry: telemetry, logger: logger,
                                        maxPendingBytes: options.maxPendingStorageBytes)
        coordinator.sampler = OnlineSampler(connection: RedisConnection(endpoint: options.redis, logger: logger), layout: OnlineLayout(prefix: options.keyPrefix),
                                            table: table, online: online, telemetry: telemetry, logger: logger, clock: clock,
                                            perRound: options.onlineSample)
        telemetry.sources = .init(online: online, offline: offline, deadLetters: deadLetters, consumer: consumer, storage: storage, table: table)
        consumer.setListener(self)
    }

    public convenience init(options: WorkerOptions, logger: Logger) throws {
        try self.init(configuration: WorkerConfiguration(options), logger: logger)
    }

    deinit {
        online.stop()
        storage.stop()
        snapshots.stop()
    }

    // MARK: - Rebalances

    /// Partitions join: nothing of an earlier ownership may be written over what recovery
    /// restores (a revoke waits for its writes; partitions lost without one may still have some
    /// queued), then each is restored from its checkpoint.
    public func assigned(_ tps: [TopicPartition]) -> [TopicPartition: Int64] {
        do { try perform(lifecycle.handle(.assigned)) } catch { fatal = fatal ?? EngineError(.lifecycle, "\(error)") }
        let numbers = Set(tps.map(\.partition))
        storage.discard(partitions: numbers)
        online.discard(partitions: numbers)
        var starts: [TopicPartition: Int64] = [:]
        let refused: Set<TopicPartition>
        do { refused = try partitionsWithLostCheckpoints(tps) } catch {
            fatal = fatal ?? error
            return starts
        }
        for tp in tps where !refused.contains(tp) {
            do {
                if let start = try table.join(tp) { starts[tp] = start }
            } catch {
                fatal = fatal ?? error
                continue
            }
            // Restored rows must still be in Redis (else they are rewritten); a new partition has none yet.
            guard let p = table[tp]?.pipeline else { continue }
            let sentinel = OnlineWriter.Sentinel(topic: tp.topic, partition: tp.partition)
            if p.core.views.contains(where: { $0.entityCount > 0 }) { online.adopt(sentinel) } else { online.arm(sentinel) }
        }
        return starts
    }

    /// Partitions without a checkpoint whose group has committed offsets: their state was lost
    /// (a deleted or wrong state directory). Starting them empty would silently replay from the
    /// beginning of the topic or, worse, miss their history; refused (a fatal error) unless
    /// `resetState` says to start them over, which rebuilds their state and offline files.
    private func partitionsWithLostCheckpoints(_ tps: [TopicPartition]) throws(EngineError) -> Set<TopicPartition> {
        guard let checkpoints else { return [] }
        let missing = tps.filter { !checkpoints.exists(topic: $0.topic, partition: $0.partition) }
        guard !missing.isEmpty else { return [] }
        let committed: [TopicPartition: Int64]
        do { committed = try consumer.committed(missing) } catch {
            throw EngineError(.checkpointMissing, "cannot read the group's committed offsets of \(missing.sorted()), which have no checkpoint: \(error)")
        }
        let lost = committed.filter { $0.value > 0 }.keys.sorted()
        guard !lost.isEmpty else { return [] }
        let list = lost.map { "\($0) (committed \(committed[$0]!))" }.joined(separator: ", ")
        if options.resetState {
            logger.warning("starting over from the beginning of the topic (--reset-state): \(list) had committed offsets but no checkpoint in \(checkpoints.directory); their state and offline files are rebuilt")
            return []
        }
        fatal = fatal ?? EngineError(.checkpointMissing, "no checkpoint in \(checkpoints.directory) for \(list), whose group \(options.group) has committed offsets",
                                     remedy: "Point --state-dir at the group's checkpoints (shared by all its workers), or run with --reset-state to rebuild these partitions from the beginning of the topic (their offline files are rewritten)")
        return Set(lost)
    }

    /// Partitions leave: made durable, checkpointed and committed, for their next owner to
    /// resume exactly there.
    public func revoked(_ tps: [TopicPartition]) {
        let numbers = Set(tps.map(\.partition))
        do {
            if !finalRoundDone { try coordinator.makeDurable(partitions: numbers, checkpoint: true, wait: true) }
        } catch {
            logger.error("could not checkpoint revoked partitions \(tps.sorted()): \(error); their next owner replays from the last checkpoint")
            offline.discard(partitions: numbers)
            storage.discard(partitions: numbers)
        }
        // Nothing of theirs is left to write; what is known of their keys is stale once another
        // worker writes them.
        online.discard(partitions: numbers)
        online.release(tps.map { OnlineWriter.Sentinel(topic: $0.topic, partition: $0.partition) })
        for tp in tps {
            table.leave(tp)
            telemetry.partitionGone(tp)
        }
    }

    // MARK: - The loop

    /// Runs until `stop` is asked (or, with `untilEnd`, until every partition is drained), then
    /// flushes, checkpoints, commits and leaves the group — giving up with an error when the stop
    /// is forced or the shutdown timeout passes first.
    public func run(stop: StopRequest) throws -> WorkerStats {
        let deadline = StopDeadline(stop, timeout: options.shutdownTimeout)
        coordinator.stop = deadline
        do {
            try perform(lifecycle.handle(.start))
            let clock = ContinuousClock()
            var nextFlush = clock.now + options.flushInterval
            var nextRoll = clock.now + options.rollInterval
            var nextCheckpoint = clock.now + options.checkpointInterval
            var drainedSince: ContinuousClock.Instant?
            var iteration = clock.now
            var pollTimeout = Self.headPollMs
            var behindSince: ContinuousClock.Instant?
            while lifecycle.isPolling {
                let started = clock.now
                telemetry.iterated(started - iteration)
                iteration = started
                if deadline.isAsked {
                    logger.notice("stopping: flushing, checkpointing and committing, then leaving the group",
                                  metadata: ["shutdown_timeout": "\(options.shutdownTimeout)", "force": "a second SIGTERM or SIGINT"])
                    try perform(lifecycle.handle(.stopRequested))
                    break
                }
                // A poll returns once its batch is full or its timeout has passed. At the head of
                // the stream records are processed as they come: a batch would take a while to fill
                // (8 192 records are 35 ms at 230 k events/s) and every record in it would wait
                // for that. Catching up, batches are full at once unless fetching falls behind for
                // a moment: then waiting for a full batch saves the cost of many small ones.
                newestProduced = -1
                let got = try consumer.poll(timeout: pollTimeout) { records in try self.process(records) }
                let now = clock.now
                if got >= consumer.batchSize {
                    if behindSince == nil { behindSince = now }
                } else {
                    behindSince = nil
                }
                // Behind by more than a second of input (catching up): the newest record polled
                // was produced over a second ago (for records without a timestamp: a second of
                // full batches). Then rows go to Redis once per catch-up interval (a quarter of the
                // lag, 1–5 s), which saves Redis most of its writes; at the head of the stream, as
                // soon as the flusher is idle, each entity's at most once per flush interval (the
                // writer keeps the others back).
                let lag: Duration? = newestProduced >= 0
                    ? .microseconds(SystemClock().now() - newestProduced * 1_000)
                    : behindSince.map { now - $0 }
                let behind = lag.map { $0 > .seconds(1) } ?? false
                pollTimeout = behind ? Self.catchUpPollMs : Self.headPollMs
                if !behind {
                    try online.flushIfIdle()
                    nextFlush = now + max(options.flushInterval, .seconds(1))
                } else if now >= nextFlush, try online.flushIfIdle() {
                    // A busy flusher defers the hand-over to the next idle moment, not a whole interval.
                    nextFlush = now + max(options.flushInterval, Self.catchUpInterval(lag: lag ?? .zero))
                }
                // Redis refused a write: poll no more until it holds every row (reporting meanwhile).
                if online.isRetrying { try coordinator.flushOnline() }
                let lost = online.takeLost()
                if !lost.isEmpty { try rewriteLostRows(lost) }
                if let fatal { throw fatal }
                try coordinator.handOverRowGroups()
                try coordinator.checkStorage()
                try coordinator.advanceRound()
                if now >= nextCheckpoint {
                    try coordinator.makeDurable(partitions: nil, checkpoint: true, wait: false)
                    nextCheckpoint = now + options.checkpointInterval
                    nextRoll = now + options.rollInterval
                } else if now >= nextRoll {
                    try coordinator.makeDurable(partitions: nil, checkpoint: false, wait: false)
                    nextRoll = now + options.rollInterval
                }
                if let idle = options.idleTimeout, !options.untilEnd { advanceIdle(after: idle) }
                telemetry.report()
                if options.untilEnd && lifecycle.current == .running && drained(since: &drainedSince) {
                    try perform(lifecycle.handle(.drained))
                }
            }
            if let fatal { throw fatal }
            try perform(lifecycle.handle(.finished))
            telemetry.stopped()
            return telemetry.stats
        } catch {
            _ = try? perform(lifecycle.handle(.failed))
            telemetry.stopped()
            throw error
        }
    }

    /// How long a poll waits for its batch to fill (ms) at the head of the stream and while
    /// catching up.
    static let headPollMs: Int32 = 5, catchUpPollMs: Int32 = 50

    /// How often rows are handed to Redis while the worker is behind by `lag`: a quarter of the
    /// lag, at least a second and at most five. Rows written while catching up are overwritten
    /// moments later; fewer of them leave Redis (and the cores it shares) to the rows that stay,
    /// and an entity's value in Redis is then at most the lag plus a quarter of it behind. The cap
    /// bounds that quarter for long lags, and the rows held back meanwhile: on `steady`, 3 s took
    /// 0.32 Redis commands per event at a peak RSS of ~1.0 GiB, 5 s 0.26 at ~1.1 GiB, 10 s 0.22
    /// at ~1.6 GiB (benchmarks/results/2026-12-07-catch-up-cap).
    package static func catchUpInterval(lag: Duration) -> Duration {
        min(max(lag / 4, .seconds(1)), .seconds(5))
    }

    /// Does what the lifecycle asks.
    private func perform(_ actions: [Lifecycle.Action]) throws {
        for action in actions {
            switch action {
            case .markJoined:
                telemetry.joinedGroup()
            case .closeOpenRows:
                for e in table.entries {
                    e.pipeline.finish()
                    telemetry.took(e.pipeline.takeCounters(), from: e.pipeline)
                }
            case .makeDurable:
                try coordinator.makeDurable(partitions: nil, checkpoint: true, wait: true)
                finalRoundDone = true
                telemetry.report(now: true)
            case .leaveGroup:
                consumer.close()
                logger.info("left the consumer group", metadata: ["group": "\(options.group)"])
            case .stopWriters:
                online.stop()
                storage.stop()
                snapshots.stop()
            }
        }
    }

    // MARK: - The online store lost its data

    /// Rewrites every entity's current row of the partitions whose sentinel key Redis lost
    /// (restarted empty, flushed), from their state; the worker does not poll meanwhile. Their
    /// sentinels are set again once Redis holds every row.
    private func rewriteLostRows(_ lost: [OnlineWriter.Sentinel]) throws {
        let started = ContinuousClock.now
        var healed: [OnlineWriter.Sentinel] = []
        var total = 0
        telemetry.busy = "rewriting the online rows Redis lost"
        defer { telemetry.busy = nil }
        for s in lost.sorted(by: { ($0.topic, $0.partition) < ($1.topic, $1.partition) }) {
            guard let entry = table[TopicPartition(s.topic, s.partition)] else { continue }
            let entities = entry.pipeline.core.views.indices.filter { entry.pipeline.views[$0].online }
                .map { entry.pipeline.core.views[$0].entityCount }.reduce(0, +)
            logger.warning("Redis lost the online rows of \(s) (its sentinel key is gone: Redis restarted empty or was flushed); rewriting the current rows of its \(entities) entities from the state",
                           metadata: ["partition": "\(s)", "entities": "\(entities)"])
            let rows = try entry.pipeline.rewriteOnline()
            telemetry.rewrote(rows)
            total += rows.values.reduce(0, +)
            healed.append(s)
        }
        guard !healed.isEmpty else { return }
        try coordinator.flushOnline()
        for s in healed { online.arm(s) }
        logger.notice("Redis holds the rewritten rows again", metadata: [
            "partitions": "\(healed.map(\.description).joined(separator: ","))", "rows": "\(total)",
            "seconds": "\(((ContinuousClock.now - started) / .milliseconds(1)).rounded() / 1_000)"])
    }

    /// Decodes, aggregates and buffers one polled batch (payloads are valid only in here).
    private func process(_ records: UnsafeBufferPointer<KafkaRecord>) throws {
        telemetry.polled(records: records.count)
        // The schemas the batch names and no one fetched yet: fetched before anything is decoded,
        // waiting (not consuming, reporting) while their registry cannot be reached.
        if !table.registries.isEmpty {
            let unknown = SchemaRegistries.unknown(records) { self.table.lookup(topic: $0.topic, partition: $0.partition)?.pipeline }
            for (client, ids) in unknown.values {
                try coordinator.retrying("fetch schemas from the schema registry \(client.url)", component: "schema_registry") {
                    try client.fetch(ids)
                }
            }
        }
        var newest = newestProduced
        defer { newestProduced = newest }
        // Records come in runs of one partition: each run is looked up once and decoded in one call.
        var start = 0
        while start < records.count {
            let first = records[start]
            var end = start
            while end < records.count && records[end].partition == first.partition && records[end].topic == first.topic {
                newest = max(newest, records[end].timestampMillis)
                end += 1
            }
            if let e = table.lookup(topic: first.topic, partition: first.partition) {
                try router.decode(records, start..<end, into: e.pipeline)
            }
            start = end
        }
        let now = ContinuousClock.now
        let touched = try router.aggregate { p, record, offset in
            (records[record].payload, DeadLetterOrigin(topic: p.topic, partition: p.partition, offset: offset))
        }
        for p in touched {
            telemetry.took(p.takeCounters(), from: p)
            table[TopicPartition(p.topic, p.partition)]?.lastEvent = now
        }
        try applyBadPartitionPolicy(touched)
    }

    private func applyBadPartitionPolicy(_ touched: [PartitionPipeline]) throws {
        guard options.badPartitionPolicy != .keepGoing else { return }
        for p in touched where p.consecutiveBad >= options.badPartitionThreshold {
            let tp = TopicPartition(p.topic, p.partition)
            guard !consumer.paused.contains(tp) else { continue }
            let message = "\(tp) yielded \(p.consecutiveBad) bad events in a row (dead-lettered with their reasons)"
            if options.badPartitionPolicy == .stop {
                fatal = fatal ?? EngineError(.badPartition, "\(message); stopping (--bad-partition stop)",
                                             remedy: "Fix the producer, or run with --bad-partition keep-going")
            } else {
                logger.error("\(message); pausing it until the worker restarts (--bad-partition pause)")
                try consumer.pause([tp])
            }
        }
    }

    /// Advances the stream time of partitions idle for `idle` to the wall clock minus `idle`.
    private func advanceIdle(after idle: Duration) {
        let now = ContinuousClock.now
        for e in table.entries where now - e.lastEvent >= idle {
            e.pipeline.advance(to: clock.now() - Int64(idle / .microseconds(1)))
            telemetry.took(e.pipeline.takeCounters(), from: e.pipeline)
            e.lastEvent = now
        }
    }

    /// Whether an `--until-end` run is done: every assigned partition is at its end, Redis is
    /// known to hold their rows (sentinels checked, lost rows rewritten), and either
    /// this worker holds every partition of its topics, or its assignment has stayed drained for
    /// `untilEndSettle` (other members hold the rest; a member that died keeps its partitions
    /// until its session times out, and they must not be mistaken for drained).
    private func drained(since: inout ContinuousClock.Instant?) -> Bool {
        let assignment = consumer.assignment
        guard !assignment.isEmpty, consumer.atEnd.union(consumer.paused).isSuperset(of: assignment), !consumer.keepsRecords,
              !online.sentinelsPending else {
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
}
