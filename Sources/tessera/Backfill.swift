import ArgumentParser
import Foundation
import TesseraEngine
import TesseraRedis

/// `tessera backfill`: a view's offline log (and optionally its online rows) from historical events.
struct BackfillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backfill",
        abstract: "Compute feature views from historical events, as the stream would have.",
        discussion: """
            Events come from JSON-lines files (one payload per line, as the topic holds them) or Parquet files \
            (one event per row, columns named like the source's fields; the event time as an integer in its \
            declared unit, an RFC 3339 string or a timestamp column), read in the order given. Each event goes \
            to the partition Kafka's default partitioner gives its key (--key-field, by default the view's first \
            join key, as decimal text for integers) among --partitions, and runs through the same decoder and \
            aggregation core as `tessera run`: the offline rows equal those of streaming the same events, in \
            the same order, through a fresh topic with that many partitions (created_timestamp aside, the wall \
            clock of the write). With --redis the final online rows are written too.

            The offline log must be fresh: views that already have files in --offline-dir are refused. \
            Events that cannot be used are written to the dead-letter file with their file, line (or row) and reason.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories (repeatable).")
    var topologies: [String] = []
    @Option(name: .customLong("events"), help: "Event files, .jsonl or .parquet (repeatable; read in order).")
    var events: [String] = []
    @Option(help: "Directory of the offline log to write.") var offlineDir: String?
    @Option(help: "Partitions of the topic the events belong to.") var partitions: Int32
    @Option(help: "The source the events belong to (default: the only source with views).") var source: String?
    @Option(name: .customLong("view"), help: "Only this feature view (repeatable; default: every view over the source).")
    var views: [String] = []
    @Option(help: "The field producers key messages by (default: the first join key of the view's entity).") var keyField: String?
    @Option(help: "Also write the final online rows to this Redis (redis://[user@]host:port[/db]; password from TESSERA_REDIS_PASSWORD).")
    var redis: String?
    @Option(help: "Prefix of online keys (default tessera:).") var keyPrefix: String?
    @Option(help: "Dead-letter file (default OFFLINE_DIR/_dead_letters.jsonl).") var deadLetterFile: String?
    @Option(help: "Largest event in bytes (default 1048576).") var maxMessageBytes = 1 << 20

    func run() throws {
        let logger = makeLogger("tessera-backfill")
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { $0.split(separator: ",").map(String.init) } ?? []) : topologies
        guard !paths.isEmpty else { throw ValidationError("missing --topology") }
        guard !events.isEmpty else { throw ValidationError("missing --events") }
        var options = BackfillOptions(topologies: try loadTopologies(paths), events: events,
                                      offlineDirectory: try required(offlineDir, "offline-dir"), partitions: partitions)
        options.source = source
        options.views = views
        options.keyField = keyField
        options.maxMessageBytes = maxMessageBytes
        options.deadLetterFile = deadLetterFile
        if let prefix = setting(keyPrefix, "key-prefix") { options.keyPrefix = prefix }
        if let url = redis {
            options.redis = try RedisEndpoint(url: url, environment: ProcessInfo.processInfo.environment)
        }
        let started = ContinuousClock.now
        let stats: BackfillStats
        do {
            stats = try Backfill(options: options, logger: logger).run()
        } catch let error as EngineError {
            printError("error: \(error.report)")
            throw ExitCode(1)
        }
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        let dead = stats.deadLettered.values.reduce(0, +)
        let reasons = stats.deadLettered.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
        printError("""
            \(stats.events) events in \(String(format: "%.1f", seconds)) s (\(Int(Double(stats.events) / max(seconds, 1e-9))) events/s): \
            \(stats.aggregated) aggregated, \(dead) dead-lettered\(dead > 0 ? " (\(reasons))" : ""); \
            \(stats.offlineRows) offline rows\(options.redis != nil ? ", \(stats.redisWrites) online rows written" : "")
            """)
    }
}
