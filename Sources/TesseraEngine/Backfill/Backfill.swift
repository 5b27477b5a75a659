import Foundation
import Logging
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOffline
import TesseraOnline
import TesseraRedis
import TesseraSource
import TesseraTopology

/// Everything `tessera backfill` needs to know.
public struct BackfillOptions: Sendable {
    public var topologies: [Topology]
    /// Event files, read in this order: JSON lines (`.jsonl`, `.ndjson`; one payload per
    /// line, as the topic holds them) or Parquet (one event per row, columns named like the fields).
    public var events: [String]
    public var offlineDirectory: String
    /// The partitions of the topic the events belong to: events go where Kafka's default
    /// partitioner puts them, and each partition keeps its own stream time, as in the stream.
    public var partitions: Int32
    /// The source the events belong to (default: the only source with feature views).
    public var source: String?
    /// Only these views (default: every view over the source).
    public var views: [String] = []
    /// The field whose value the producers key messages by (default: the first join key of the
    /// first view's entity).
    public var keyField: String?
    /// Also write the final online rows.
    public var redis: RedisEndpoint?
    public var keyPrefix = "tessera:"
    public var deadLetterFile: String?
    public var maxMessageBytes = 1 << 20
    /// Offline files are rolled after this many events (bounds memory).
    public var rollEvents = 2_000_000
    public var onProgress: (@Sendable (BackfillStats) -> Void)?

    public init(topologies: [Topology], events: [String], offlineDirectory: String, partitions: Int32) {
        self.topologies = topologies
        self.events = events
        self.offlineDirectory = offlineDirectory
        self.partitions = partitions
    }
}

public struct BackfillStats: Sendable {
    public var events = 0
    public var aggregated = 0
    public var late = 0
    public var deadLettered: [DeadLetterReason: Int] = [:]
    public var emissions = 0
    public var offlineRows = 0
    public var redisWrites = 0
    public init() {}
}

/// Computes feature views from historical events with the stream's own path (`RecordRouter`
/// and `PartitionPipeline`): each event goes to the partition Kafka's default partitioner would
/// give its key, gets the offset it would have there (its position in that partition, counting
/// from 0), and runs through the same decoder, core and sinks as in `tessera run`. Streaming the
/// same events, in the same order, into a fresh topic with that many partitions and running the
/// worker to the end gives the same offline rows (created timestamps aside: they are the wall
/// clock of the write) and the same online rows.
///
/// A backfill writes a fresh offline log: it refuses a directory where a view already has files.
/// Events it cannot use are dead-lettered (file, line or row, reason, payload), never dropped.
public final class Backfill {
    public let options: BackfillOptions
    let logger: Logger
    let source: Source
    let views: [FeatureView]
    let keyIndex: Int
    let offline: OfflineLog
    let online: OnlineWriter?
    private let router: RecordRouter
    private let clock: any WallClock
    private var pipelines: [PartitionPipeline?]
    /// Decodes each event of a chunk once, into `decoded`, to read the key that places it; the
    /// rows then go to their partitions' pipelines as they are (`PartitionPipeline.accept`).
    private var placement: JSONEventDecoder
    /// The fields the source takes from a Kafka record: null in events read from files.
    private var recordFields: RecordFields?
    private var decoded: ColumnBatch
    /// Per partition, the rows of `decoded` placed in it and the chunk index of each one's event;
    /// the partitions in the order the chunk first placed an event in them.
    private var placedRows: [[Int]]
    private var placedRecords: [[Int]]
    private var placedOrder: [Int32] = []
    /// A key's text, for the partitioner (reused from event to event).
    private var keyText: [UInt8] = []
    public private(set) var stats = BackfillStats()

    public init(options: BackfillOptions, logger: Logger, clock: any WallClock = SystemClock()) throws {
        self.options = options
        self.logger = logger
        self.clock = clock
        guard options.partitions > 0 else { throw EngineError(.configuration, "--partitions must be at least 1") }
        guard !options.events.isEmpty else { throw EngineError(.configuration, "no event files given") }
        var candidates: [(Source, [FeatureView])] = []
        for t in options.topologies {
            for s in t.sources where options.source == nil || s.name == options.source {
                let v = t.views.filter { $0.source == s.name && (options.views.isEmpty || options.views.contains($0.name)) }
                if !v.isEmpty { candidates.append((s, v)) }
            }
        }
        guard let (source, views) = candidates.first else {
            throw EngineError(.topology, options.source.map { "no feature view reads a source named \($0)" } ?? "the topologies define no feature view")
        }
        guard candidates.count == 1 else {
            throw EngineError(.configuration, "the views read several sources (\(candidates.map(\.0.name).joined(separator: ", ")))",
                              remedy: "Choose one with --source")
        }
        for name in options.views where !views.contains(where: { $0.name == name }) {
            throw EngineError(.configuration, "no feature view \(name) over source \(source.name)")
        }
        self.source = source
        self.views = views
        let keyField: String
        if let field = options.keyField ?? source.key {
            keyField = field
        } else {
            let entity = options.topologies.lazy.compactMap { $0.entity(named: views[0].entities[0]) }.first
            guard let first = entity?.joinKeys.first?.name else {
                throw EngineError(.configuration, "cannot tell the key field of \(views[0].name)", remedy: "Give --key-field")
            }
            keyField = first
        }
        guard let k = source.schema.index(of: keyField) else {
            throw EngineError(.configuration, "the key field \(keyField) is not a field of source \(source.name)")
        }
        keyIndex = k
        guard source.format == .json else {
            throw EngineError(.configuration, "source \(source.name) is \(source.format.rawValue); backfill reads JSON event files (one event per line)")
        }
        // Event files hold payloads only: nothing of a Kafka record (key, timestamp, headers).
        if source.origin(k).path == nil {
            throw EngineError(.configuration, "the key field \(keyField) is \(source.origin(k)); event files hold payloads only",
                              remedy: "Give --key-field with a payload field")
        }
        if let t = source.schema.index(of: source.timestamp.field), source.origin(t).path == nil {
            throw EngineError(.configuration, "the event time of source \(source.name) is \(source.origin(t)); event files hold payloads only")
        }
        for view in views where view.offline {
            let existing = OfflineLog.files(directory: options.offlineDirectory, view: view.name)
            guard existing.isEmpty else {
                throw EngineError(.configuration, "\(options.offlineDirectory)/\(view.name) already holds \(existing.count) files; a backfill writes a fresh log",
                                  remedy: "Remove them or choose another --offline-dir")
            }
        }
        offline = try OfflineLog(directory: options.offlineDirectory, views: views.filter(\.offline))
        online = options.redis.map {
            OnlineWriter(layout: OnlineLayout(prefix: options.keyPrefix), connection: RedisConnection(endpoint: $0, logger: logger),
                         views: views, logger: logger, clock: clock)
        }
        router = RecordRouter(deadLetters: try DeadLetterSink(
            destination: .file(options.deadLetterFile ?? "\(options.offlineDirectory)/_dead_letters.jsonl"), producer: nil))
        pipelines = Array(repeating: nil, count: Int(options.partitions))
        placement = JSONEventDecoder(source: source, maxBytes: options.maxMessageBytes)
        recordFields = RecordFields(source: source)
        decoded = ColumnBatch(schema: source.schema.types)
        placedRows = Array(repeating: [], count: Int(options.partitions))
        placedRecords = Array(repeating: [], count: Int(options.partitions))
    }

    deinit { online?.stop() }

    /// Reads every event file, closes the rows still open at the end, and makes everything durable.
    public func run() throws -> BackfillStats {
        var sinceRoll = 0
        for path in options.events {
            let events = try EventFile(path: path, fields: source.schema.names, timestamp: source.timestamp, maxBytes: options.maxMessageBytes)
            defer { events.close() }
            while let chunk = try events.next() {
                try process(chunk, file: path)
                var groups = offline.takeRowGroups()
                for i in groups.indices {
                    try offline.write(groups[i])
                    offline.recycle(&groups[i])
                }
                sinceRoll += chunk.count
                if sinceRoll >= options.rollEvents {
                    try makeDurable()
                    sinceRoll = 0
                }
                options.onProgress?(stats)
            }
        }
        for case let p? in pipelines {
            p.finish()
            took(p)
        }
        try makeDurable()
        online?.stop()
        stats.redisWrites = online?.writes ?? 0
        stats.deadLettered = router.deadLetters.counts
        return stats
    }

    private func makeDurable() throws {
        try online?.flush()
        stats.offlineRows += try offline.roll()
        try router.deadLetters.flush()
    }

    private func took(_ p: PartitionPipeline) {
        let c = p.takeCounters()
        stats.aggregated += c.aggregated
        stats.late += c.late
        stats.emissions += c.closed
    }

    /// Decodes and places one chunk of events, then aggregates it (payloads are valid only in here).
    private func process(_ chunk: EventChunk, file: String) throws {
        decoded.removeAll()
        for p in placedOrder {
            placedRows[Int(p)].removeAll(keepingCapacity: true)
            placedRecords[Int(p)].removeAll(keepingCapacity: true)
        }
        placedOrder.removeAll(keepingCapacity: true)
        for i in 0..<chunk.count {
            stats.events += 1
            let payload = chunk.payload(i)
            // As a pipeline decodes a record: the record's fields are read first (none can be
            // wrong here: a file has no record key, timestamp or header), appended after the payload.
            var rejection = recordFields?.read(key: nil, timestampMillis: -1, header: { _ in nil })
            if rejection == nil { rejection = placement.decode(payload, into: &decoded) }
            if let rejection {
                try router.deadLetters.record(DeadLetterOrigin(topic: file, partition: -1, offset: chunk.positions[i]),
                                              rejection: rejection, payload: payload)
                continue
            }
            recordFields?.append(into: &decoded)
            let row = decoded.count - 1
            // The key decides the partition; an event without a usable key cannot be placed.
            guard decoded.columns[keyIndex].validity[row] else {
                decoded.removeLast()
                try router.deadLetters.record(DeadLetterOrigin(topic: file, partition: -1, offset: chunk.positions[i]),
                                              rejection: Rejection(.missingKey, "'\(source.schema.names[keyIndex])' is null: no partition to put the event in"),
                                              payload: payload)
                continue
            }
            let partition = self.partition(of: row)
            if placedRows[Int(partition)].isEmpty { placedOrder.append(partition) }
            placedRows[Int(partition)].append(row)
            placedRecords[Int(partition)].append(i)
        }
        for p in placedOrder {
            placedRows[Int(p)].withUnsafeBufferPointer { rows in
                placedRecords[Int(p)].withUnsafeBufferPointer { records in
                    router.accept(decoded, rows: rows, records: records, into: pipeline(p))
                }
            }
        }
        let touched = try router.aggregate { p, record, _ in
            (chunk.payload(record), DeadLetterOrigin(topic: file, partition: p.partition, offset: chunk.positions[record]))
        }
        for p in touched { took(p) }
        try online?.flushIfIdle()
    }

    private func pipeline(_ partition: Int32) -> PartitionPipeline {
        if let p = pipelines[Int(partition)] { return p }
        let p = PartitionPipeline(topic: source.topic, partition: partition, source: source, views: views,
                                  core: PartitionAggregator(views: views.map(\.spec), allowedLateness: source.allowedLateness),
                                  sinks: EmissionSinks(online: online, offline: offline), clock: clock,
                                  maxMessageBytes: options.maxMessageBytes, statistics: false)
        p.nextOffset = 0
        pipelines[Int(partition)] = p
        return p
    }

    /// The partition Kafka's default partitioner gives row `row`'s key: the bytes a producer
    /// sends for the key field's value, its text (numbers as `DecimalText` writes them).
    private func partition(of row: Int) -> Int32 {
        let column = decoded.columns[keyIndex]
        keyText.removeAll(keepingCapacity: true)
        switch column.type {
        case .string: return column.withUTF8(at: row) { KafkaPartitioner.partition(key: $0, partitions: options.partitions) }
        case .int64: DecimalText.append(column.ints[row], to: &keyText)
        case .bool: keyText.append(contentsOf: (column.ints[row] != 0 ? "true" : "false").utf8)
        case .float64: DecimalText.append(column.doubles[row], to: &keyText)
        }
        return KafkaPartitioner.partition(key: keyText, partitions: options.partitions)
    }
}
