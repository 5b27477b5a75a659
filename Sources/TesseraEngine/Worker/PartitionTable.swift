import Logging
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline
import TesseraSource
import TesseraTopology

/// The partitions this worker owns: each one's pipeline, and where its input and its commits
/// stand. A partition joins restored from its checkpoint and leaves when it is revoked.
final class PartitionTable {
    /// One owned partition.
    final class Entry {
        let tp: TopicPartition
        /// Index of the topic in the consumer's `topics`.
        let topicIndex: Int
        let pipeline: PartitionPipeline
        /// The offset committed for it (the next offset to read), -1 before any.
        var committedOffset: Int64 = -1
        var lag: Int64 = 0
        /// When it last received events (for idle advancement).
        var lastEvent = ContinuousClock.now

        init(tp: TopicPartition, topicIndex: Int, pipeline: PartitionPipeline) {
            self.tp = tp
            self.topicIndex = topicIndex
            self.pipeline = pipeline
        }
    }

    private let configuration: WorkerConfiguration
    private let topics: [String]
    private let checkpoints: CheckpointStore?
    private let offline: OfflineLog
    private let sinks: EmissionSinks
    private let clock: any WallClock
    private let logger: Logger
    /// The sources' schema registries.
    let registries: SchemaRegistries
    private var byPartition: [TopicPartition: Entry] = [:]
    /// Per topic index, per partition number (the hot lookup of every record run).
    private var byIndex: [[Int32: Entry]]
    /// What restoring checkpoints under a changed topology did (logged once, not per partition).
    private var restoreNotesLogged: Set<String> = []

    init(configuration: WorkerConfiguration, topics: [String], checkpoints: CheckpointStore?, offline: OfflineLog,
         sinks: EmissionSinks, clock: any WallClock, logger: Logger) throws {
        self.configuration = configuration
        registries = try SchemaRegistries(sources: configuration.sources, maxMessageBytes: configuration.options.maxMessageBytes)
        self.topics = topics
        self.checkpoints = checkpoints
        self.offline = offline
        self.sinks = sinks
        self.clock = clock
        self.logger = logger
        byIndex = Array(repeating: [:], count: topics.count)
    }

    var count: Int { byPartition.count }
    var entries: Dictionary<TopicPartition, Entry>.Values { byPartition.values }
    var partitions: [TopicPartition] { byPartition.keys.sorted() }

    subscript(tp: TopicPartition) -> Entry? { byPartition[tp] }

    func lookup(topic: Int, partition: Int32) -> Entry? { byIndex[topic][partition] }

    /// A partition joins: its checkpoint restored (state, offset, offline-log position), the
    /// offline files written after that checkpoint removed. Without a checkpoint it starts empty
    /// from the beginning of the topic and its offline files are rebuilt. Returns the offset to
    /// resume from (nil when the group's committed offset applies: no checkpoint store). A
    /// checkpoint that cannot be used throws: guessing would count twice.
    func join(_ tp: TopicPartition) throws(EngineError) -> Int64? {
        guard let s = configuration.sources.firstIndex(where: { $0.topic == tp.topic }) else { return nil }
        let source = configuration.sources[s], views = configuration.views[s]
        let specs = views.map(\.spec)
        var core = PartitionAggregator(views: specs, allowedLateness: source.allowedLateness)
        var position: CheckpointStore.Position?
        var start: Int64?
        if let checkpoints {
            do {
                let saved = try checkpoints.load(topic: tp.topic, partition: tp.partition)
                if let saved {
                    core = try PartitionAggregator(views: specs, allowedLateness: source.allowedLateness, restoring: saved.state)
                    for note in core.restoreNotes where restoreNotesLogged.insert(note).inserted { logger.notice("\(note)") }
                    position = saved.position
                }
                start = position?.nextOffset ?? 0
                let removed = try offline.recover(partition: tp.partition, nextSequences: position?.nextSequences ?? [:])
                // Features added to a view: its earlier files get their columns (null), so that every
                // file of the view has the view's whole schema.
                for view in core.grownViews {
                    let started = ContinuousClock.now
                    let (files, rows) = try offline.widen(view: view, partition: tp.partition)
                    guard files > 0 else { continue }
                    logger.notice("offline files given the view's added features (null before they existed)",
                                  metadata: ["partition": "\(tp)", "view": "\(view)", "files": "\(files)", "rows": "\(rows)",
                                             "seconds": "\((ContinuousClock.now - started).seconds)"])
                }
                logger.info("partition restored", metadata: ["partition": "\(tp)", "offset": "\(start!)",
                                                             "checkpoint": "\(saved != nil)", "offline_files_trimmed": "\(removed)"])
            } catch {
                throw EngineError(.checkpointUnusable,
                                  "cannot resume \(tp) from \(checkpoints.path(topic: tp.topic, partition: tp.partition)): \(error)")
            }
        }
        let pipeline = PartitionPipeline(topic: tp.topic, partition: tp.partition, source: source, views: views, core: core,
                                         sinks: sinks, clock: clock, maxMessageBytes: configuration.options.maxMessageBytes,
                                         schemas: registries.client(for: source), descriptorDecoder: registries.descriptorDecoder(for: source))
        pipeline.lastCreated = position?.lastCreated ?? 0
        let index = topics.firstIndex(of: tp.topic) ?? 0
        let entry = Entry(tp: tp, topicIndex: index, pipeline: pipeline)
        if let start {
            pipeline.nextOffset = start
            entry.committedOffset = start
        }
        byPartition[tp] = entry
        byIndex[index][tp.partition] = entry
        return start
    }

    /// A partition leaves (its next owner resumes from what was made durable).
    func leave(_ tp: TopicPartition) {
        guard let entry = byPartition.removeValue(forKey: tp) else { return }
        byIndex[entry.topicIndex][tp.partition] = nil
    }

    /// Each partition's lag behind the high watermark librdkafka last saw; returns the total.
    func updateLag(_ consumer: KafkaConsumer) -> Int64 {
        var total: Int64 = 0
        for (tp, e) in byPartition {
            if let high = consumer.highWatermark(tp), e.pipeline.nextOffset >= 0 { e.lag = max(0, high - e.pipeline.nextOffset) }
            total += e.lag
        }
        return total
    }
}
