import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TesseraEngine
import TesseraKafka
import TesseraRedis
import TesseraTopology

/// `tessera run`: the worker.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the worker: consume the topologies' topics, write Redis and the offline log.",
        discussion: "Every flag can also be set as TESSERA_<FLAG> (e.g. TESSERA_BROKERS). Secrets come from the environment: TESSERA_REDIS_PASSWORD, TESSERA_KAFKA_SASL_PASSWORD.")

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
    @Option(help: "Online flush interval in milliseconds (default 100).") var flushMs: Int?
    @Option(help: "Offline roll interval in seconds (default 10).") var rollSeconds: Double?
    @Option(help: "Checkpoint (and offset commit) interval in seconds (default 30).") var checkpointSeconds: Double?
    @Option(help: "Seconds without events after which a partition's stream time follows the wall clock (default 60, 0 = never).") var idleSeconds: Double?
    @Option(help: "Write rejected events to this Kafka topic (default: OFFLINE_DIR/_dead_letters.jsonl).") var deadLetterTopic: String?
    @Option(help: "Write rejected events to this file as JSON lines.") var deadLetterFile: String?
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?
    @Option(help: "Seconds between stats lines on stderr (default 5, 0 = none).") var statsSeconds: Double?
    @Option(help: "What to do with a partition whose last --bad-partition-threshold events were all rejected: keep-going (default), pause (stop fetching it until restart) or stop (exit with an error).")
    var badPartition: String?
    @Option(help: "Rejected events in a row that make a partition bad (default 10000).") var badPartitionThreshold: Int?
    @Option(help: "Events larger than this many bytes are dead-lettered as oversized without being parsed (default 1048576).") var maxMessageBytes: Int?

    func run() async throws {
        let logger = makeLogger("tessera")
        let topologyPaths = topologies.isEmpty ? (setting(nil, "topology").map { $0.split(separator: ",").map(String.init) } ?? []) : topologies
        guard !topologyPaths.isEmpty else { throw ValidationError("missing --topology") }
        let loaded = try loadTopologies(topologyPaths)
        let offlineDir = try required(self.offlineDir, "offline-dir")
        var options = WorkerOptions(topologies: loaded, brokers: try required(brokers, "brokers"),
                                    redis: try RedisEndpoint(url: try required(redis, "redis"), environment: ProcessInfo.processInfo.environment),
                                    offlineDirectory: offlineDir)
        options.group = setting(group, "group") ?? "tessera"
        options.stateDirectory = setting(stateDir, "state-dir") ?? "\(offlineDir)/_state"
        options.kafkaProperties = try kafkaProperties(flags: kafkaConfig, file: kafkaConfigFile)
        options.untilEnd = untilEnd || setting(nil, "until-end") == "1"
        if let ms = setting(flushMs.map(String.init), "flush-ms").flatMap(Int.init) { options.flushInterval = .milliseconds(ms) }
        if let s = setting(rollSeconds.map { String($0) }, "roll-seconds").flatMap(Double.init) { options.rollInterval = .milliseconds(Int(s * 1_000)) }
        if let s = setting(checkpointSeconds.map { String($0) }, "checkpoint-seconds").flatMap(Double.init) { options.checkpointInterval = .milliseconds(Int(s * 1_000)) }
        if let s = setting(idleSeconds.map { String($0) }, "idle-seconds").flatMap(Double.init) { options.idleTimeout = s > 0 ? .milliseconds(Int(s * 1_000)) : nil }
        if let s = setting(statsSeconds.map { String($0) }, "stats-seconds").flatMap(Double.init) { options.statsInterval = s > 0 ? .milliseconds(Int(s * 1_000)) : nil }
        if let topic = setting(deadLetterTopic, "dead-letter-topic") { options.deadLetters = .topic(topic) }
        if let file = setting(deadLetterFile, "dead-letter-file") { options.deadLetters = .file(file) }
        if let prefix = setting(keyPrefix, "key-prefix") { options.keyPrefix = prefix }
        if let policy = setting(badPartition, "bad-partition") {
            guard let p = BadPartitionPolicy(rawValue: policy) else {
                throw ValidationError("--bad-partition takes \(BadPartitionPolicy.allCases.map(\.rawValue).joined(separator: ", ")), got \(policy)")
            }
            options.badPartitionPolicy = p
        }
        if let n = setting(badPartitionThreshold.map(String.init), "bad-partition-threshold") {
            guard let v = Int(n), v > 0 else { throw ValidationError("--bad-partition-threshold takes a positive count, got \(n)") }
            options.badPartitionThreshold = v
        }
        if let n = setting(maxMessageBytes.map(String.init), "max-message-bytes") {
            guard let v = Int(n), v > 0 else { throw ValidationError("--max-message-bytes takes a positive size, got \(n)") }
            options.maxMessageBytes = v
        }

        logger.info("starting", metadata: ["brokers": "\(options.brokers)", "redis": "\(options.redis)", "group": "\(options.group)",
                                           "views": "\(loaded.flatMap(\.views).map(\.name))", "librdkafka": "\(librdkafkaVersion)"])
        let service = WorkerService(options: options, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        if let stats = service.result.withLock({ $0 }) {
            logger.info("stopped", metadata: ["events": "\(stats.events)", "aggregated": "\(stats.aggregated)", "late": "\(stats.late)",
                                              "dead_lettered": "\(stats.deadLettered)", "emissions": "\(stats.emissions)",
                                              "redis_writes": "\(stats.redisWrites)", "offline_rows": "\(stats.offlineRows)"])
        }
    }
}

/// Raised by a signal, read by the worker thread between polls.
final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// The blocking worker loop on its own thread, as a `Service`: a graceful shutdown (SIGTERM)
/// makes it flush, commit, checkpoint and leave the group.
final class WorkerService: Service {
    let options: WorkerOptions
    let logger: Logger
    let result = Mutex<WorkerStats?>(nil)

    init(options: WorkerOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    func run() async throws {
        let stop = StopFlag()
        let options = self.options, logger = self.logger
        let stats: WorkerStats = try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<WorkerStats, any Error>) in
                let thread = Thread {
                    do {
                        let worker = try Worker(options: options, logger: logger)
                        continuation.resume(returning: try worker.run(shouldStop: { stop.isSet }))
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "tessera-worker"
                thread.stackSize = 8 << 20
                thread.start()
            }
        } onGracefulShutdown: {
            stop.set()
        }
        result.withLock { $0 = stats }
    }
}
