import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraRedis
import TesseraTopology
import UnixSignals

/// The worker's settings: flags, then `TESSERA_*` environment variables, then the worker config
/// file (`--config`), in that precedence. Shared by `tessera run` and `tessera config`.
struct WorkerFlags: ParsableArguments {
    @Option(help: "Worker config file (YAML; keys are these flags' names). Flags and TESSERA_* variables override it.")
    var config: String?
    @Option(name: .customLong("topology"), help: "Topology files or directories (repeatable).")
    var topologies: [String] = []
    @Option(help: "Kafka bootstrap servers, HOST:PORT,…") var brokers: String?
    @Option(help: "Redis URL, redis://HOST:PORT[/DB].") var redis: String?
    @Option(help: "Directory of the offline log.") var offlineDir: String?
    @Option(help: "Consumer group id (default tessera).") var group: String?
    @Option(help: "Directory for partition checkpoints, shared by the group's workers (default OFFLINE_DIR/_state).") var stateDir: String?
    @Option(name: .customLong("kafka-config"), help: "A librdkafka property KEY=VALUE (repeatable; no secrets).")
    var kafkaConfig: [String] = []
    @Option(help: "A file of librdkafka properties, one KEY=VALUE per line.") var kafkaConfigFile: String?
    @Flag(help: "Stop once every assigned partition is drained, after flushing everything.") var untilEnd = false
    @Option(help: "An entity's online row is written at most once per this many milliseconds (default 100).") var flushMs: Int?
    @Option(help: "Offline roll interval in seconds (default 10).") var rollSeconds: Double?
    @Option(help: "Offline rows per Parquet row group, encoded as they come (default 131072).") var rowGroupRows: Int?
    @Option(help: "Checkpoint (and offset commit) interval in seconds (default 30).") var checkpointSeconds: Double?
    @Option(help: "Seconds a stop (SIGTERM, SIGINT) may take to flush, checkpoint and commit before it gives up with an error (default 30); a second signal gives up at once.")
    var shutdownSeconds: Double?
    @Flag(help: "Start partitions that have no checkpoint but committed offsets over from the beginning of the topic, rebuilding their state and offline files (without it, such a partition is refused).")
    var resetState = false
    @Option(help: "Entities whose Redis row is read back and held against the state after each checkpoint (default 100, 0 = none); mismatches count in tessera_online_offline_mismatches_total.")
    var onlineSample: Int?
    @Option(help: "Seconds without events after which a partition's stream time follows the wall clock (default 60, 0 = never).") var idleSeconds: Double?
    @Option(help: "Write rejected events to this Kafka topic (default: OFFLINE_DIR/_dead_letters.jsonl).") var deadLetterTopic: String?
    @Option(help: "Write rejected events to this file as JSON lines.") var deadLetterFile: String?
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?
    @Option(help: "Seconds between stats lines on stderr (default 5, 0 = none).") var statsSeconds: Double?
    @Option(help: "What to do with a partition whose last --bad-partition-threshold events were all rejected: keep-going (default), pause (stop fetching it until restart) or stop (exit with an error).")
    var badPartition: String?
    @Option(help: "Rejected events in a row that make a partition bad (default 10000).") var badPartitionThreshold: Int?
    @Option(help: "Events larger than this many bytes are dead-lettered as oversized without being parsed (default 1048576).") var maxMessageBytes: Int?
    @Option(help: "Serve /metrics (Prometheus), /health and /ready on this port (default: off).") var metricsPort: Int?
    @Option(help: "Address the metrics port binds to (default 127.0.0.1).") var metricsHost: String?
    @Option(help: "Ready means caught up within this many events of lag (default 10000).") var readyLag: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info).") var logLevel: String?

    /// The resolved worker options, and every setting with where it came from (secrets redacted).
    /// With `loadingTopologies` false (`tessera config`), topology files are listed, not read.
    func resolve(loadingTopologies: Bool = true) throws -> (options: WorkerOptions, metrics: (host: String, port: Int)?, readyLag: Int64,
                                                           logLevel: Logger.Level, entries: [Settings.Entry]) {
        var s = try Settings(file: config ?? ProcessInfo.processInfo.environment["TESSERA_CONFIG"])
        let topologyPaths = s.list(topologies, "topology")
        guard !topologyPaths.isEmpty else { throw ValidationError("missing --topology (or TESSERA_TOPOLOGY, or topology: in the config file)") }
        let loaded = loadingTopologies ? try loadTopologies(topologyPaths) : []
        let offlineDir = try s.required(offlineDir, "offline-dir")
        var environment = ProcessInfo.processInfo.environment
        for key in ["TESSERA_REDIS_PASSWORD", "TESSERA_REDIS_PASSWORD_FILE"] where environment[key] == nil {
            if let v = s.fileValue(key.dropFirst("TESSERA_".count).lowercased().replacingOccurrences(of: "_", with: "-")) { environment[key] = v }
        }
        let endpoint = try RedisEndpoint(url: try s.required(redis, "redis"), environment: environment)
        if endpoint.password != nil {
            // Where the password came from: the process's own environment, or the config file.
            let own = ProcessInfo.processInfo.environment
            let origin = own["TESSERA_REDIS_PASSWORD"] != nil ? "env TESSERA_REDIS_PASSWORD"
                : own["TESSERA_REDIS_PASSWORD_FILE"] != nil ? "env TESSERA_REDIS_PASSWORD_FILE"
                : s.fileValue("redis-password") != nil ? "file" : "file (redis-password-file)"
            s.record("redis-password", "***", origin)
        }
        var options = WorkerOptions(topologies: loaded, brokers: try s.required(brokers, "brokers"), redis: endpoint, offlineDirectory: offlineDir)
        options.group = s.value(group, "group") ?? "tessera"
        options.stateDirectory = s.value(stateDir, "state-dir") ?? "\(offlineDir)/_state"
        options.kafkaProperties = try kafkaProperties(flags: kafkaConfig, file: s.value(kafkaConfigFile, "kafka-config-file"),
                                                      configured: s.fileList("kafka-config"))
        for (key, value) in options.kafkaProperties { s.record("kafka-config", "\(key)=\(isSecret(key) ? "***" : value)", "") }
        options.untilEnd = s.isOn(untilEnd, "until-end")
        if let ms = try s.number(flushMs.map(Double.init), "flush-ms") { options.flushInterval = .milliseconds(Int(ms)) }
        if let v = try s.number(rollSeconds, "roll-seconds") { options.rollInterval = .milliseconds(Int(v * 1_000)) }
        if let v = try s.number(rowGroupRows.map(Double.init), "row-group-rows") { options.offlineRowGroupRows = Int(v) }
        if let v = try s.number(checkpointSeconds, "checkpoint-seconds") { options.checkpointInterval = .milliseconds(Int(v * 1_000)) }
        if let v = try s.number(shutdownSeconds, "shutdown-seconds") { options.shutdownTimeout = .milliseconds(Int(v * 1_000)) }
        options.resetState = s.isOn(resetState, "reset-state")
        if let v = try s.number(onlineSample.map(Double.init), "online-sample") { options.onlineSample = Int(v) }
        if let v = try s.number(idleSeconds, "idle-seconds") { options.idleTimeout = v > 0 ? .milliseconds(Int(v * 1_000)) : nil }
        if let v = try s.number(statsSeconds, "stats-seconds") { options.statsInterval = v > 0 ? .milliseconds(Int(v * 1_000)) : nil }
        if let topic = s.value(deadLetterTopic, "dead-letter-topic") { options.deadLetters = .topic(topic) }
        if let file = s.value(deadLetterFile, "dead-letter-file") { options.deadLetters = .file(file) }
        if let prefix = s.value(keyPrefix, "key-prefix") { options.keyPrefix = prefix }
        if let policy = s.value(badPartition, "bad-partition") {
            guard let p = BadPartitionPolicy(rawValue: policy) else {
                throw ValidationError("--bad-partition takes \(BadPartitionPolicy.allCases.map(\.rawValue).joined(separator: ", ")), got \(policy)")
            }
            options.badPartitionPolicy = p
        }
        if let v = try s.number(badPartitionThreshold.map(Double.init), "bad-partition-threshold") { options.badPartitionThreshold = Int(v) }
        if let v = try s.number(maxMessageBytes.map(Double.init), "max-message-bytes") { options.maxMessageBytes = Int(v) }
        let readyLag = try s.number(readyLag.map(Double.init), "ready-lag").map { Int64($0) } ?? 10_000
        var metrics: (String, Int)?
        if let port = try s.number(metricsPort.map(Double.init), "metrics-port") {
            metrics = (s.value(metricsHost, "metrics-host") ?? "127.0.0.1", Int(port))
        }
        let levelName = s.value(logLevel, "log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else { throw ValidationError("--log-level takes trace, debug, info, notice, warning, error or critical, got \(levelName)") }
        try s.checkUnused()
        return (options, metrics, readyLag, level, s.entries)
    }
}

/// `tessera run`: the worker.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the worker: consume the topologies' topics, write Redis and the offline log.",
        discussion: """
            Settings come from flags, then TESSERA_<FLAG> variables (e.g. TESSERA_BROKERS), then the worker config \
            file (--config or TESSERA_CONFIG). Secrets come from the environment: TESSERA_REDIS_PASSWORD, \
            TESSERA_KAFKA_SASL_PASSWORD. `tessera config` prints the resolved settings, redacted.
            """)

    @OptionGroup var flags: WorkerFlags

    func run() async throws {
        endProcessOnFatalSignals()
        let resolved = try flags.resolve()
        let options = resolved.options
        let logger = makeLogger("tessera", level: resolved.logLevel)
        logger.info("starting", metadata: ["brokers": "\(options.brokers)", "redis": "\(options.redis)", "group": "\(options.group)",
                                           "views": "\(options.topologies.flatMap(\.views).map(\.name))", "librdkafka": "\(librdkafkaVersion)"])
        let configuration: WorkerConfiguration
        do { configuration = try WorkerConfiguration(options) } catch {
            printError("error: \(error.report)")
            throw ExitCode(2)
        }
        let health = resolved.metrics.map { _ in WorkerHealth(readyLag: resolved.readyLag) }
        let service = WorkerService(configuration: configuration, logger: logger, health: health)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let (host, port) = resolved.metrics, let health {
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultValueHistogramBuckets = [1, 10, 100, 1_000, 10_000]
            factory.valueHistogramBuckets[MetricName.freshness] = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3_600, 86_400]
            factory.defaultDurationHistogramBuckets = [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                                                       .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)]
            MetricsSystem.bootstrap(factory)
            services.append(.init(service: operationsServer(host: host, port: port, registry: registry, health: health, logger: logger)))
            logger.info("metrics, health and readiness", metadata: ["address": "http://\(host):\(port)/metrics"])
        }
        // Last, so that a shutdown stops the worker first and /health, /ready and /metrics answer
        // while it finishes.
        services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        // The first SIGTERM or SIGINT shuts the group down gracefully (the worker finishes within
        // its shutdown timeout); a second one forces the worker to give up at once.
        let signals = Task { [service] in
            var count = 0
            for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                count += 1
                if count == 1 {
                    await group.triggerGracefulShutdown()
                } else {
                    logger.warning("second stop signal: giving up the final checkpoint", metadata: ["signal": "\(signal)"])
                    service.stop()
                }
            }
        }
        defer { signals.cancel() }
        do {
            try await group.run()
        } catch {
            // The worker's own failure is reported below, after the other services stopped.
            guard case .failure? = service.outcome else { throw error }
        }
        switch service.outcome {
        case .failure(let error as any TesseraError)?:
            logger.error("\(error.report)", metadata: ["code": "\(error.code)"])
            throw ExitCode.failure
        case .failure(let error)?:
            throw error
        case .success(let stats)?:
            logger.info("stopped", metadata: ["events": "\(stats.events)", "aggregated": "\(stats.aggregated)", "late": "\(stats.late)",
                                              "dead_lettered": "\(stats.deadLettered)", "emissions": "\(stats.emissions)",
                                              "redis_writes": "\(stats.redisWrites)", "offline_rows": "\(stats.offlineRows)",
                                              "longest_loop_us": "\(stats.longestLoopMicros)",
                                              "longest_checkpoint_pause_us": "\(stats.longestCheckpointPauseMicros)",
                                              "longest_checkpoint_hold_us": "\(stats.longestCheckpointHoldMicros)"])
        case nil:
            break
        }
    }
}

/// `tessera config`: the worker's resolved settings and where each came from, secrets redacted.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the worker's resolved settings (flags > TESSERA_* variables > config file), secrets redacted.")

    @OptionGroup var flags: WorkerFlags

    func run() async throws {
        let resolved = try flags.resolve(loadingTopologies: false)
        let width = resolved.entries.map(\.name.count).max() ?? 0
        let valueWidth = resolved.entries.map(\.value.count).max() ?? 0
        for e in resolved.entries {
            let name = e.name + ":" + String(repeating: " ", count: width - e.name.count)
            let value = e.value + String(repeating: " ", count: valueWidth - e.value.count)
            print("\(name) \(value)\(e.origin.isEmpty ? "" : "  # \(e.origin)")")
        }
    }
}
