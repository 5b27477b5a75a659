import TesseraCore
import TesseraRedis
import TesseraSource
import TesseraTopology

/// Everything `tessera run` can be told: plain settings, checked once by `WorkerConfiguration`.
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
    /// Offline rows are encoded, compressed and written to the file being built, as they come, in
    /// Parquet row groups of this many rows; a roll writes the rest and the footer.
    public var offlineRowGroupRows = 1 << 17
    /// Partitions are checkpointed, and offsets committed behind the checkpoints, at this interval.
    public var checkpointInterval: Duration = .seconds(30)
    /// A stop finishes its flush, checkpoint and commit within this, or gives up with an error.
    public var shutdownTimeout: Duration = .seconds(30)
    /// Partitions without a checkpoint whose group has committed offsets start over from the
    /// beginning of the topic (their state and offline files rebuilt) instead of being refused.
    public var resetState = false
    /// Entities whose Redis row is read back and held against the state after each checkpoint
    /// round's flush (`tessera_online_offline_mismatches_total`); 0 turns the check off.
    public var onlineSample = 100
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

/// Worker options checked once, with what they imply worked out: the sources to consume (a
/// topic declared by several topologies is one source) and the views over each.
public struct WorkerConfiguration: Sendable {
    public let options: WorkerOptions
    /// The sources consumed, one per topic.
    public let sources: [Source]
    /// The views over each source, by source index, in the core's order.
    public let views: [[FeatureView]]
    public var allViews: [FeatureView] { views.flatMap { $0 } }

    public init(_ options: WorkerOptions) throws(EngineError) {
        func positive(_ d: Duration, _ name: String) throws(EngineError) {
            guard d > .zero else { throw EngineError(.configuration, "\(name) must be positive, got \(d)") }
        }
        try positive(options.flushInterval, "the flush interval")
        try positive(options.rollInterval, "the roll interval")
        guard options.offlineRowGroupRows > 0 else {
            throw EngineError(.configuration, "offline row groups need at least one row, got \(options.offlineRowGroupRows)")
        }
        try positive(options.checkpointInterval, "the checkpoint interval")
        try positive(options.shutdownTimeout, "the shutdown timeout")
        if let idle = options.idleTimeout { try positive(idle, "the idle timeout") }
        if let stats = options.statsInterval { try positive(stats, "the stats interval") }
        guard !options.brokers.isEmpty else { throw EngineError(.configuration, "no Kafka brokers given", remedy: "Pass --brokers HOST:PORT") }
        guard !options.group.isEmpty else { throw EngineError(.configuration, "the consumer group id is empty") }
        guard options.batchSize >= 1 else { throw EngineError(.configuration, "the batch size must be at least 1, got \(options.batchSize)") }
        guard options.maxMessageBytes >= 1 else {
            throw EngineError(.configuration, "--max-message-bytes takes a positive size, got \(options.maxMessageBytes)")
        }
        guard options.badPartitionThreshold >= 1 else {
            throw EngineError(.configuration, "--bad-partition-threshold takes a positive count, got \(options.badPartitionThreshold)")
        }
        guard options.onlineSample >= 0 else { throw EngineError(.configuration, "--online-sample takes a count of 0 or more, got \(options.onlineSample)") }
        guard options.maxPendingStorageBytes >= 1 else { throw EngineError(.configuration, "the storage back-pressure limit must be positive") }

        var sources: [Source] = []
        var views: [[FeatureView]] = []
        for t in options.topologies {
            for s in t.sources {
                let v = t.views.filter { $0.source == s.name }
                guard !v.isEmpty else { continue }
                if let i = sources.firstIndex(where: { $0.topic == s.topic }) {
                    guard sources[i].schema == s.schema, sources[i].timestamp == s.timestamp else {
                        throw EngineError(.topology, "topic \(s.topic) is declared by two sources with different fields",
                                          remedy: "Declare the source once and share it")
                    }
                    views[i] += v
                } else {
                    sources.append(s)
                    views.append(v)
                }
            }
        }
        guard !sources.isEmpty else { throw EngineError(.topology, "the topologies define no feature view; nothing to compute") }
        self.options = options
        self.sources = sources
        self.views = views
    }
}
