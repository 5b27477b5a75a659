import Foundation
import TesseraCore
import TesseraSource
import TesseraTopology

/// One input partition on its way through Tessera:
///
///     payload bytes → columns (JSONEventDecoder) → the aggregation core (PartitionAggregator)
///       → emissions, stamped with a created time and the input offset that closed them
///       → Redis (every row) and the offline log (closed rows)
///
/// `Worker` feeds it records from Kafka, `Backfill` events from files: both compute the same rows.
final class PartitionPipeline {
    let topic: String
    let partition: Int32
    /// The views over the partition's source, in the core's order.
    let views: [FeatureView]
    var core: PartitionAggregator
    private var decoder: JSONEventDecoder
    private var batch: ColumnBatch
    /// Input offset of each decoded row, and the caller's index of the record it came from.
    private var rowOffsets: [Int64] = []
    private var rowRecords: [Int] = []
    /// The offset of the next input record.
    var nextOffset: Int64 = -1
    /// The last created timestamp given out (created timestamps increase per partition).
    var lastCreated: Micros = 0
    /// Emissions per view since the owner last took them (for metrics).
    var emitted: [Int]
    private var created: [Micros] = []
    private var offsets: [Int64] = []

    init(topic: String, partition: Int32, source: Source, views: [FeatureView], core: PartitionAggregator, maxMessageBytes: Int) {
        self.topic = topic
        self.partition = partition
        self.views = views
        self.core = core
        decoder = JSONEventDecoder(source: source, maxBytes: maxMessageBytes)
        emitted = Array(repeating: 0, count: views.count)
        batch = ColumnBatch(schema: source.schema.types)
    }

    /// Rows decoded and waiting for `aggregate`.
    var pending: Int { batch.count }

    /// Decodes one input record into the pending batch, or returns why it is rejected (the
    /// caller dead-letters it).
    func decode(_ payload: UnsafeRawBufferPointer, offset: Int64, record: Int) -> Rejection? {
        nextOffset = offset + 1
        if let rejection = decoder.decode(payload, into: &batch) { return rejection }
        rowOffsets.append(offset)
        rowRecords.append(record)
        return nil
    }

    /// Aggregates the pending batch and hands its emissions to the sinks. Returns how many rows
    /// counted, and the rows the core rejected (late events) with their record and offset.
    func aggregate(online: OnlineWriter?, offline: OfflineLog?)
        -> (aggregated: Int, closed: Int, rejected: [(record: Int, offset: Int64, reason: PartitionAggregator.Rejection)]) {
        guard batch.count > 0 else { return (0, 0, []) }
        let rejected = core.ingest(batch).map { (record: rowRecords[$0.row], offset: rowOffsets[$0.row], reason: $0.reason) }
        let aggregated = batch.count - rejected.count
        let closed = emit(online: online, offline: offline)
        batch.removeAll()
        rowOffsets.removeAll(keepingCapacity: true)
        rowRecords.removeAll(keepingCapacity: true)
        return (aggregated, closed, rejected)
    }

    /// Moves stream time to `time` (idle advancement) and hands the emissions to the sinks.
    func advance(to time: Micros, online: OnlineWriter?, offline: OfflineLog?) -> Int {
        guard time > core.streamTime else { return 0 }
        core.advance(to: time)
        return emit(online: online, offline: offline)
    }

    /// The input is complete: closes the rows still open at the stream time.
    func finish(online: OnlineWriter?, offline: OfflineLog?) -> Int {
        core.finish()
        return emit(online: online, offline: offline)
    }

    /// Hands the core's new emissions to the sinks with their created timestamps and offsets;
    /// returns the number of closed rows.
    private func emit(online: OnlineWriter?, offline: OfflineLog?) -> Int {
        let now = Int64(Date().timeIntervalSince1970 * 1_000_000)
        var closedRows = 0
        for (v, view) in views.enumerated() {
            let e = core.views[v].emissions
            guard e.count > 0 else { continue }
            emitted[v] += e.count
            created.removeAll(keepingCapacity: true)
            offsets.removeAll(keepingCapacity: true)
            for i in 0..<e.count {
                lastCreated = max(now, lastCreated + 1)
                created.append(lastCreated)
                // The input offset that closed the row: the record that moved stream time past it,
                // or the next offset when the end of the batch or of the input closed it.
                let closer = Int(e.closers[i])
                offsets.append(closer >= 0 && closer < rowOffsets.count ? rowOffsets[closer] : nextOffset)
            }
            let closed = e.closedCount
            closedRows += closed
            // Redis gets every row, open ones too (the freshest values); the offline log only
            // closed rows, which do not depend on how the input was batched.
            if view.online, let online { online.add(view: view.name, partition: partition, emissions: e, created: created) }
            if view.offline, let offline {
                offline.append(view: view.name, partition: partition, emissions: e, count: closed, created: created, offsets: offsets)
            }
        }
        core.removeAllEmissions()
        return closedRows
    }
}
