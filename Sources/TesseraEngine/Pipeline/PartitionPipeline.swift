import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline
import TesseraRegistry
import TesseraSource
import TesseraTopology

/// Where a partition's emissions go: Redis gets every row (open ones too: the freshest values),
/// the offline log only closed rows (which do not depend on how the input was batched).
struct EmissionSinks {
    var online: OnlineWriter?
    var offline: OfflineLog?
}

/// One input partition on its way through Tessera:
///
///     payload bytes → columns (JSONEventDecoder) → the aggregation core (PartitionAggregator)
///       → emissions, stamped with a created time and the input offset that closed them
///       → its sinks: Redis (every row) and the offline log (closed rows)
///
/// `RecordRouter` feeds it, in `tessera run` (records from Kafka) and `tessera backfill` (events
/// from files): both compute the same rows. It counts what went through it in `counters`.
final class PartitionPipeline {
    let topic: String
    let partition: Int32
    /// The source's name (the metrics' `source` label).
    let source: String
    /// The views over the partition's source, in the core's order.
    let views: [FeatureView]
    private(set) var core: PartitionAggregator
    private let sinks: EmissionSinks
    private let clock: any WallClock
    /// The decoders and the rows decoded and waiting for `aggregate`.
    private var intake: Intake
    /// Where the source's writer schemas are, for a format that names its schema.
    let schemas: SchemaRegistryClient?
    /// The header names `decode`'s `header` lookup is asked for.
    var headerNames: [String] { intake.recordFields?.headerNames ?? [] }
    /// The bound on each pending row's event time (`aggregate`).
    private var rowLimits: [Micros] = []
    private let maxFutureSkew: Micros
    /// The offset of the next input record.
    var nextOffset: Int64 = -1
    /// The last created timestamp given out (created timestamps increase per partition).
    var lastCreated: Micros = 0
    private var created: [Micros] = []
    private var offsets: [Int64] = []
    /// Per view, the statistics of its closed rows (`QualityMonitor` publishes them); none where
    /// nobody reads them (`tessera backfill`).
    private(set) var statistics: [ViewStatistics]

    /// What went through the pipeline since the owner last took the counters.
    struct Counters {
        var consumed = 0
        var aggregated = 0
        var late = 0
        var rejected: [DeadLetterReason: Int] = [:]
        /// Mis-keyed events aggregated anyway (`KeyMismatchPolicy.accept`), by reason.
        var acceptedMisKeyed: [DeadLetterReason: Int] = [:]
        /// Closed rows (the offline log's), and every emission per view (open ones too).
        var closed = 0
        var emitted: [Int]

        init(views: Int) { emitted = Array(repeating: 0, count: views) }
    }
    var counters: Counters
    /// Events rejected in a row, for the bad-partition policy (not reset by taking the counters).
    private(set) var consecutiveBad = 0

    init(topic: String, partition: Int32, source: Source, views: [FeatureView], core: PartitionAggregator,
         sinks: EmissionSinks, clock: any WallClock, maxMessageBytes: Int, schemas: SchemaRegistryClient? = nil,
         descriptorDecoder: ProtobufEventDecoder? = nil, statistics: Bool = true) {
        self.topic = topic
        self.partition = partition
        self.source = source.name
        self.views = views
        self.core = core
        self.sinks = sinks
        self.clock = clock
        self.schemas = schemas
        intake = Intake(batch: ColumnBatch(schema: source.schema.types), recordFields: RecordFields(source: source),
                        keyCheck: source.key.flatMap { key in
                            source.schema.index(of: key).map { KeyCheck(field: key, column: $0, policy: source.keyMismatch) }
                        })
        switch source.format {
        case .json: intake.json = JSONEventDecoder(source: source, maxBytes: maxMessageBytes)
        case .avro:
            intake.avro = AvroEventDecoder(source: source, schemas: RegistryLookup(client: schemas), maxBytes: maxMessageBytes)
        case .protobuf:
            intake.protobuf = descriptorDecoder
                ?? ProtobufEventDecoder(source: source, schemas: RegistryLookup(client: schemas), maxBytes: maxMessageBytes)
        }
        maxFutureSkew = source.maxFutureSkew
        counters = Counters(views: views.count)
        self.statistics = statistics ? views.map(ViewStatistics.init(view:)) : []
    }

    /// Takes the counters so far (and starts new ones).
    func takeCounters() -> Counters {
        defer { counters = Counters(views: views.count) }
        return counters
    }

    /// Rows decoded and waiting for `aggregate`.
    var pending: Int { intake.batch.count }

    /// Decodes a run of this partition's input records, `records[run]` in order, into the
    /// pending batch; a record whose event is rejected is handed to `rejected` with its index
    /// (the caller dead-letters it). Indices are the caller's, for `aggregate`'s dead letters.
    /// Each record's key is checked against the event's key field; when it was produced bounds
    /// how far ahead its event time may be; fields the source takes from the record (key,
    /// timestamp, headers) are read from it. The pending batch is accessed once for the run.
    func decode(_ records: UnsafeBufferPointer<KafkaRecord>, _ run: Range<Int>,
                rejected: (Int, Rejection) throws -> Void) rethrows {
        guard !run.isEmpty else { return }
        counters.consumed += run.count
        let headers = headerNames
        try Self.decode(records, run, headers: headers, into: &intake, counters: &counters, consecutiveBad: &consecutiveBad,
                        nextOffset: &nextOffset, rejected: rejected)
    }

    private static func decode(_ records: UnsafeBufferPointer<KafkaRecord>, _ run: Range<Int>, headers: [String],
                               into intake: inout Intake, counters: inout Counters, consecutiveBad: inout Int, nextOffset: inout Int64,
                               rejected: (Int, Rejection) throws -> Void) rethrows {
        for i in run {
            let r = records[i]
            nextOffset = r.offset + 1
            switch intake.decode(r.payload, key: r.key, timestampMillis: r.timestampMillis, header: { r.header(headers[$0]) },
                                 offset: r.offset, record: i) {
            case .accepted:
                consecutiveBad = 0
            case .acceptedMisKeyed(let reason):
                counters.acceptedMisKeyed[reason, default: 0] += 1
                consecutiveBad = 0
            case .rejected(let rejection):
                counters.rejected[rejection.reason, default: 0] += 1
                consecutiveBad += 1
                try rejected(i, rejection)
            }
        }
    }

    /// Takes rows `rows` of `decoded` as its next input records, `records[i]` the caller's index
    /// of row `rows[i]`'s record: events the caller decoded with the source's decoder, and the
    /// fields the source takes from a record (null: there is none), as `decode` would have.
    /// `tessera backfill` decodes each event once, to read the key that places it.
    func accept(_ decoded: ColumnBatch, rows: UnsafeBufferPointer<Int>, records: UnsafeBufferPointer<Int>) {
        guard rows.count > 0 else { return }
        intake.accept(decoded, rows: rows, records: records, firstOffset: nextOffset)
        nextOffset += Int64(rows.count)
        counters.consumed += rows.count
        consecutiveBad = 0
    }

    /// Aggregates the pending batch and hands its emissions to the sinks. Returns the rows the
    /// core rejected (late, too far ahead, a join key missing), with the caller's record index
    /// and the offset of each.
    func aggregate() -> [(record: Int, offset: Int64, rejection: Rejection)] {
        guard intake.batch.count > 0 else { return [] }
        // The bound on the future: the time the record was produced (or now, if that is unknown
        // or later), plus the source's skew. A replay computes the same bounds.
        let now = clock.now()
        rowLimits.removeAll(keepingCapacity: true)
        for stamp in intake.rowStamps {
            let produced = stamp >= 0 && stamp < now / 1_000 ? stamp * 1_000 : now
            rowLimits.append(produced > Int64.max - maxFutureSkew ? Int64.max : produced + maxFutureSkew)
        }
        let rejected = core.ingest(intake.batch, notAfter: rowLimits).map {
            (record: intake.rowRecords[$0.row], offset: intake.rowOffsets[$0.row], rejection: Rejection($0.reason))
        }
        let aggregated = intake.batch.count - rejected.count
        counters.aggregated += aggregated
        for r in rejected {
            counters.rejected[r.rejection.reason, default: 0] += 1
            if r.rejection.reason == .late { counters.late += 1 }
        }
        if aggregated == 0 { consecutiveBad += rejected.count }
        // The batch's rows are as fresh as its earliest record: produced → visible is measured
        // from there (never reported fresher than it is).
        let earliest = intake.rowStamps.lazy.filter { $0 >= 0 }.min()
        emit(produced: earliest.map { $0 * 1_000 })
        intake.removeAll()
        return rejected
    }

    /// Moves stream time to `time` (idle advancement) and hands the emissions to the sinks.
    func advance(to time: Micros) {
        guard time > core.streamTime else { return }
        core.advance(to: time)
        emit()
    }

    /// The input is complete: closes the rows still open at the stream time.
    func finish() {
        core.finish()
        emit()
    }

    /// Hands the core's new emissions to the sinks with their created timestamps and offsets;
    /// `produced` is when the input that made them was produced, if known.
    private func emit(produced: Micros? = nil) {
        let now = clock.now()
        for (v, view) in views.enumerated() {
            let e = core.views[v].emissions
            guard e.count > 0 else { continue }
            counters.emitted[v] += e.count
            // Filled in locals (taken out of the pipeline and put back, keeping their capacity):
            // the class's properties would be checked for exclusive access row by row.
            var created = self.created, offsets = self.offsets, last = lastCreated
            self.created = []
            self.offsets = []
            created.removeAll(keepingCapacity: true)
            offsets.removeAll(keepingCapacity: true)
            let next = nextOffset
            intake.rowOffsets.withUnsafeBufferPointer { rowOffsets in
                e.closers.withUnsafeBufferPointer { closers in
                    for i in 0..<closers.count {
                        last = max(now, last + 1)
                        created.append(last)
                        // The input offset that closed the row: the record that moved stream time
                        // past it, or the next offset when the end of the batch or of the input closed it.
                        let closer = Int(closers[i])
                        offsets.append(closer >= 0 && closer < rowOffsets.count ? rowOffsets[closer] : next)
                    }
                }
            }
            lastCreated = last
            let closed = e.closedCount
            counters.closed += closed
            if !statistics.isEmpty { statistics[v].add(e, rows: 0..<closed) }
            if view.online, let online = sinks.online {
                online.add(view: view.name, partition: partition, emissions: e, created: created, produced: produced)
                core.recordCreated(view: v, created)
            }
            if view.offline, let offline = sinks.offline {
                offline.append(view: view.name, partition: partition, emissions: e, count: closed, created: created, offsets: offsets)
            }
            self.created = created
            self.offsets = offsets
        }
        core.removeAllEmissions()
    }

    /// Whether a checkpoint still shares view `v`'s state (see `ViewAggregator.isStateShared`).
    func isStateShared(view v: Int) -> Bool { core.isStateShared(view: v) }

    /// The current rows of view `v`'s entities `ids` (see `ViewAggregator.currentRows`).
    func currentRows(view v: Int, _ ids: Range<Int>) -> (rows: EmissionBatch, created: [Micros]) {
        core.currentRows(view: v, ids)
    }

    /// Hands the online store every entity's current row again (Redis lost them), `chunk`
    /// entities at a time, with the writer's back-pressure between chunks. Returns the rows per
    /// online view.
    func rewriteOnline(chunk: Int = 50_000) throws -> [String: Int] {
        guard let online = sinks.online else { return [:] }
        var written: [String: Int] = [:]
        for (v, view) in views.enumerated() where view.online {
            var start = 0
            while start < core.views[v].entityCount {
                let (rows, created) = core.currentRows(view: v, start..<start + chunk)
                online.add(view: view.name, partition: partition, emissions: rows, created: created)
                written[view.name, default: 0] += rows.count
                start += chunk
                try online.flushIfIdle()
            }
        }
        return written
    }

    /// Where the partition's input and output stand, for its checkpoint (taken with its state).
    func position(nextSequences: [String: Int64]) -> CheckpointStore.Position {
        .init(nextOffset: nextOffset, lastCreated: lastCreated, nextSequences: nextSequences)
    }
}

/// A partition's decoders and the rows they decoded, waiting for `aggregate`: one value, so that
/// decoding a record is one access to the pipeline's state rather than one per property, each
/// checked for exclusivity at run time.
private struct Intake {
    /// The payload decoder of the source's format (one of the three).
    var json: JSONEventDecoder?
    var avro: AvroEventDecoder?
    var protobuf: ProtobufEventDecoder?
    var batch: ColumnBatch
    /// The fields the source takes from the Kafka record (key, timestamp, headers), if any.
    var recordFields: RecordFields?
    /// How the record key is checked against the event (nil: the source has no key field).
    let keyCheck: KeyCheck?
    /// Input offset of each decoded row, and the caller's index of the record it came from.
    var rowOffsets: [Int64] = []
    var rowRecords: [Int] = []
    /// When each row's record was produced (ms, -1 if unknown).
    var rowStamps: [Int64] = []

    init(batch: ColumnBatch, recordFields: RecordFields?, keyCheck: KeyCheck?) {
        self.batch = batch
        self.recordFields = recordFields
        self.keyCheck = keyCheck
    }

    enum Outcome {
        case accepted
        /// Accepted although its key is not its event's (`KeyMismatchPolicy.accept`).
        case acceptedMisKeyed(DeadLetterReason)
        case rejected(Rejection)
    }

    /// See `PartitionPipeline.decode`.
    mutating func decode(_ payload: UnsafeRawBufferPointer, key: UnsafeRawBufferPointer?, timestampMillis: Int64,
                         header: (Int) -> UnsafeRawBufferPointer?, offset: Int64, record: Int) -> Outcome {
        if recordFields != nil, let rejection = recordFields!.read(key: key, timestampMillis: timestampMillis, header: header) {
            return .rejected(rejection)
        }
        let rejection = json != nil ? json!.decode(payload, into: &batch)
            : (avro != nil ? avro!.decode(payload, into: &batch) : protobuf!.decode(payload, into: &batch))
        if let rejection { return .rejected(rejection) }
        recordFields?.append(into: &batch)
        var outcome = Outcome.accepted
        if let key, let keyCheck, let mismatch = keyCheck.mismatch(key, batch) {
            if keyCheck.policy == .deadLetter {
                batch.removeLast()
                return .rejected(mismatch)
            }
            outcome = .acceptedMisKeyed(mismatch.reason)
        }
        rowOffsets.append(offset)
        rowRecords.append(record)
        rowStamps.append(timestampMillis)
        return outcome
    }

    /// See `PartitionPipeline.accept`.
    mutating func accept(_ decoded: ColumnBatch, rows: UnsafeBufferPointer<Int>, records: UnsafeBufferPointer<Int>, firstOffset: Int64) {
        batch.append(rows: rows, of: decoded)
        rowOffsets.append(contentsOf: firstOffset..<firstOffset + Int64(rows.count))
        rowRecords.append(contentsOf: records)
        rowStamps.append(contentsOf: repeatElement(-1, count: rows.count))
    }

    mutating func removeAll() {
        batch.removeAll()
        rowOffsets.removeAll(keepingCapacity: true)
        rowRecords.removeAll(keepingCapacity: true)
        rowStamps.removeAll(keepingCapacity: true)
    }
}

/// The record key against the event's key field, as text: what the producer partitioned by
/// must be the entity the event is about, or the entity's state splits across partitions.
struct KeyCheck {
    let field: String
    let column: Int
    let policy: KeyMismatchPolicy

    /// Why the last row of `batch` does not match `key`, or nil. A null key field is left to
    /// the core (a missing join key).
    func mismatch(_ key: UnsafeRawBufferPointer, _ batch: ColumnBatch) -> Rejection? {
        guard key.count > 0 else { return Rejection(.nullKey, "the record has no key; '\(field)' routes this source") }
        let c = batch.columns[column]
        let row = c.count - 1
        guard c.validity[row] else { return nil }
        switch c.type {
        case .int64:
            if DecimalText.matches(key, c.ints[row]) { return nil }
            return Rejection(.keyMismatch, "the record key \(quoted(key)) is not '\(field)' \(c.ints[row])")
        default:
            if c.withUTF8(at: row, { $0.elementsEqual(key) }) { return nil }
            return Rejection(.keyMismatch, "the record key \(quoted(key)) is not '\(field)' \(quoted(c.withUTF8(at: row) { UnsafeRawBufferPointer($0) }))")
        }
    }

    private func quoted(_ bytes: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: bytes.prefix(64), as: UTF8.self)
        return "'\(text)\(bytes.count > 64 ? "…" : "")'"
    }
}

/// A schema registry's schemas as the decoders look them up: those its client fetched.
struct RegistryLookup: SchemaLookup {
    let client: SchemaRegistryClient?

    func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? {
        guard let found = client?.cached(id) else { return nil }
        switch found {
        case .success(let s):
            return .success(RegisteredSchema(kind: RegisteredSchema.Kind(rawValue: s.type) ?? .json, text: s.text, references: s.references))
        case .failure(let missing):
            return .failure(SchemaUnavailable(missing.description))
        }
    }
}
