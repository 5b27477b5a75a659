import Foundation
import Metrics
import Synchronization
import TesseraOnline
import TesseraTopology

/// Every metric the worker exports, by name: the one place they are spelled (swift-metrics;
/// `tessera run --metrics-port` exports them in the Prometheus text format).
///
/// `component` labels are `MetricName.components`; `reason` labels are `DeadLetterReason`s.
public enum MetricName {
    // Counters.
    public static let eventsConsumed = "tessera_events_consumed_total"             // {source}
    public static let eventsAggregated = "tessera_events_aggregated_total"         // {source}
    public static let eventsLate = "tessera_events_late_total"                     // {source}
    public static let eventsDeadLettered = "tessera_events_dead_lettered_total"    // {source, reason}
    /// Mis-keyed events aggregated anyway under `key_mismatch: accept` (reason key_mismatch, null_key).
    public static let eventsMisKeyedAccepted = "tessera_events_mis_keyed_accepted_total" // {source, reason}
    public static let emissions = "tessera_emissions_total"                        // {view}
    public static let offlineRows = "tessera_offline_rows_total"                   // {view}
    public static let redisWrites = "tessera_redis_writes_total"                   // {view}
    public static let redisCommands = "tessera_redis_commands_total"
    public static let errors = "tessera_errors_total"                              // {component}
    public static let checkpoints = "tessera_checkpoints_total"
    public static let commits = "tessera_commits_total"
    /// Current rows rewritten because Redis lost them (a partition's sentinel key was gone).
    public static let onlineRowsRewritten = "tessera_online_rows_rewritten_total"  // {view}
    /// Partitions whose rows Redis was found to have lost.
    public static let onlineLosses = "tessera_online_losses_total"
    /// Entities whose Redis row the worker read back after a checkpoint round's flush, and those
    /// whose row was not their current row in the state (missing, older, different).
    public static let onlineSampled = "tessera_online_rows_sampled_total"
    public static let onlineMismatches = "tessera_online_offline_mismatches_total"
    /// Writer schemas asked of the schema registries, by what came back: `found` or `missing`.
    public static let schemaFetches = "tessera_schema_fetches_total"               // {result}
    // Gauges.
    public static let partitionLag = "tessera_partition_lag"                       // {topic, partition}
    public static let partitionWatermark = "tessera_partition_watermark_seconds"   // {topic, partition}
    public static let partitionsAssigned = "tessera_partitions_assigned"
    public static let checkpointAge = "tessera_checkpoint_age_seconds"
    public static let retrying = "tessera_retrying"
    public static let ready = "tessera_ready"
    public static let residentMemory = "tessera_process_resident_memory_bytes"
    /// Writer schemas the worker knows (fetched, or known to be missing).
    public static let schemasCached = "tessera_schemas_cached"
    // Histograms.
    public static let checkpointDuration = "tessera_checkpoint_duration_seconds"
    /// How long one iteration of the worker loop took (poll, aggregate, sinks, commits).
    public static let loopIteration = "tessera_loop_iteration_seconds"
    /// How long the worker loop stopped to hand a partition's state over for its checkpoint.
    public static let checkpointPause = "tessera_checkpoint_pause_seconds"
    /// How long a partition's records were held back while its state was written to its checkpoint file.
    public static let checkpointHold = "tessera_checkpoint_hold_seconds"
    public static let batchSize = "tessera_batch_size"
    /// The input's produce time (its Kafka timestamp; the event time when the record has none) →
    /// the row written to Redis, per row written: {view}.
    public static let freshness = "tessera_freshness_seconds"

    // Feature quality (`QualityMonitor`): gauges {view, feature, window = rolling | all}.
    public static let featureRows = "tessera_feature_rows"
    public static let featureNullRatio = "tessera_feature_null_ratio"
    public static let featureMin = "tessera_feature_min"
    public static let featureMax = "tessera_feature_max"
    public static let featureMean = "tessera_feature_mean"
    public static let featureStddev = "tessera_feature_stddev"
    public static let featureQuantile = "tessera_feature_quantile"                 // … and {quantile}
    /// Drift of the rolling window from the view's baseline: {view, feature}.
    public static let featurePSI = "tessera_feature_psi"
    public static let featureKS = "tessera_feature_ks"
    /// The view's drift thresholds (`quality:`), for the alert rules: {view}.
    public static let psiThreshold = "tessera_view_psi_threshold"
    public static let ksThreshold = "tessera_view_ks_threshold"
    /// The view's `freshness_target` in seconds, and its rows written to Redis within the target
    /// of the produce time of the input that changed them, and in all: {view}.
    public static let freshnessTarget = "tessera_freshness_target_seconds"
    public static let freshnessRows = "tessera_freshness_rows_total"
    public static let freshnessWithinTarget = "tessera_freshness_within_target_total"

    /// The `component` label of `errors`: what failed.
    public static let components = ["redis", "kafka", "offline", "checkpoint", "dead_letters", "schema_registry"]
}

/// The worker's metric handles, created on first use (an amount of 0 creates a counter, so that
/// it is exported from the start). Used from the worker thread; the handles are thread-safe.
final class WorkerMetrics {
    private var counters: [String: Counter] = [:]
    private var gauges: [String: Gauge] = [:]
    /// Last cumulative value published per counter, for counters fed from running totals.
    private var published: [String: Int] = [:]
    let batchSize = Recorder(label: MetricName.batchSize, aggregate: true)
    let checkpointDuration = Metrics.Timer(label: MetricName.checkpointDuration)
    let loopIteration = Metrics.Timer(label: MetricName.loopIteration)
    let checkpointPause = Metrics.Timer(label: MetricName.checkpointPause)
    let checkpointHold = Metrics.Timer(label: MetricName.checkpointHold)

    /// Per online view, its freshness histogram and counters (see `FreshnessRecorders`).
    static func freshness(_ views: [FeatureView]) -> [String: FreshnessRecorders] {
        var out: [String: FreshnessRecorders] = [:]
        for v in views where v.online {
            let labels = [("view", v.name)]
            out[v.name] = FreshnessRecorders(seconds: Recorder(label: MetricName.freshness, dimensions: labels, aggregate: true),
                                             rows: Counter(label: MetricName.freshnessRows, dimensions: labels),
                                             withinTarget: v.freshnessTarget.map { _ in Counter(label: MetricName.freshnessWithinTarget, dimensions: labels) },
                                             target: v.freshnessTarget)
        }
        return out
    }

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        labels.isEmpty ? name : name + "{" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
    }

    /// Adds to a counter (an amount of 0 creates it, so that it is exported from the start).
    func add(_ name: String, _ labels: [(String, String)] = [], _ amount: Int) {
        let k = Self.key(name, labels)
        if let c = counters[k] {
            if amount > 0 { c.increment(by: amount) }
            return
        }
        let c = Counter(label: name, dimensions: labels)
        counters[k] = c
        if amount > 0 { c.increment(by: amount) }
    }

    /// Publishes a running total as a counter (increments by what it grew since last time).
    func total(_ name: String, _ labels: [(String, String)] = [], _ value: Int) {
        let k = Self.key(name, labels)
        let last = published[k] ?? 0
        guard value > last else { return }
        published[k] = value
        add(name, labels, value - last)
    }

    func set(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        let k = Self.key(name, labels)
        if let g = gauges[k] { g.record(value); return }
        let g = Gauge(label: name, dimensions: labels)
        gauges[k] = g
        g.record(value)
    }

    /// Stops exporting a gauge (a partition that left this worker).
    func remove(_ name: String, _ labels: [(String, String)]) {
        gauges.removeValue(forKey: Self.key(name, labels))?.destroy()
    }

    /// Resident set size of this process, from /proc/self/statm.
    static func residentBytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// What the worker's health and readiness endpoints report, shared between the worker thread
/// (which updates it between polls, and while it waits on Redis or storage) and the server.
public final class WorkerHealth: Sendable {
    public struct Snapshot: Sendable {
        /// When the worker loop last reported (it reports while waiting, too).
        public var lastReport: ContinuousClock.Instant?
        /// Whether the worker joined its group (it got an assignment, possibly empty).
        public var joined = false
        public var partitions = 0
        public var lag: Int64 = 0
        public var retrying: String?
        public var stopped = false
    }

    private let state = Mutex(Snapshot())
    /// Ready means caught up within this many events of lag.
    public let readyLag: Int64
    /// Live means the loop reported within this long.
    public let liveWithin: Duration

    public init(readyLag: Int64 = 10_000, liveWithin: Duration = .seconds(30)) {
        self.readyLag = readyLag
        self.liveWithin = liveWithin
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    package func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }

    public var isLive: Bool {
        let s = snapshot
        guard !s.stopped, let last = s.lastReport else { return s.lastReport == nil && !s.stopped }
        return ContinuousClock.now - last < liveWithin
    }

    /// Joined, its partitions restored, caught up within `readyLag`, and not waiting on anything.
    public var isReady: Bool {
        let s = snapshot
        return isLive && s.joined && s.lag <= readyLag && s.retrying == nil
    }
}
