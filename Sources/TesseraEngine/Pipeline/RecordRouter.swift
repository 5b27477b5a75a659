import TesseraCore
import TesseraKafka
import TesseraSource

/// Decode → aggregate → reject for a batch of input records of any partitions: the one path by
/// which input reaches the core, in `tessera run` and in `tessera backfill`. Every record is
/// decoded into its partition's pipeline (`tessera backfill` hands the pipeline rows it decoded
/// to place them, `accept`) or dead-lettered with why; then each pipeline fed is
/// aggregated once, and the rows the core refused (late, too far ahead, keyless) are dead-lettered with their payload.
final class RecordRouter {
    let deadLetters: DeadLetterSink
    private var touched: [PartitionPipeline] = []
    private var isTouched: Set<ObjectIdentifier> = []
    /// Records come in runs of one partition: the set is consulted only when the pipeline changes.
    /// An identity, not a weak reference: a weak reference gives every pipeline a side table, and
    /// each retain and release of it then takes the runtime's slow path (per record).
    private var last: ObjectIdentifier?

    init(deadLetters: DeadLetterSink) { self.deadLetters = deadLetters }

    /// Decodes `records[run]`, a run of one partition's records in order, into its `pipeline`;
    /// a rejected record is dead-lettered here with its topic, partition and offset.
    func decode(_ records: UnsafeBufferPointer<KafkaRecord>, _ run: Range<Int>, into pipeline: PartitionPipeline) throws {
        touch(pipeline)
        try pipeline.decode(records, run) { i, rejection in
            let r = records[i]
            try deadLetters.record(DeadLetterOrigin(topic: pipeline.topic, partition: r.partition, offset: r.offset),
                                   rejection: rejection, payload: r.payload)
        }
    }

    /// Hands rows of `decoded` to `pipeline` (see `PartitionPipeline.accept`).
    func accept(_ decoded: ColumnBatch, rows: UnsafeBufferPointer<Int>, records: UnsafeBufferPointer<Int>, into pipeline: PartitionPipeline) {
        touch(pipeline)
        pipeline.accept(decoded, rows: rows, records: records)
    }

    private func touch(_ pipeline: PartitionPipeline) {
        let id = ObjectIdentifier(pipeline)
        if id != last {
            last = id
            if isTouched.insert(id).inserted { touched.append(pipeline) }
        }
    }

    /// Aggregates every pipeline fed since the last call and returns them. `record(p, i, offset)`
    /// gives the payload and dead-letter origin of record `i` of the batch (a row the core refused).
    @discardableResult
    func aggregate(_ record: (PartitionPipeline, Int, Int64) -> (payload: UnsafeRawBufferPointer, origin: DeadLetterOrigin)) throws -> [PartitionPipeline] {
        defer {
            touched.removeAll(keepingCapacity: true)
            isTouched.removeAll(keepingCapacity: true)
            last = nil
        }
        for p in touched where p.pending > 0 {
            for late in p.aggregate() {
                let (payload, origin) = record(p, late.record, late.offset)
                try deadLetters.record(origin, rejection: late.rejection, payload: payload)
            }
        }
        return touched
    }
}
