import Benchmark
import Foundation
import TesseraCore
import TesseraSource
import TesseraTopology
import TesseraWorkload

/// Decode into columns on one core: 1 M reference orders — JSON (≈ 115 bytes each), Avro and
/// Protobuf (≈ 27 bytes, the schema registry's framing) — decoded straight from their bytes into
/// the orders source's column batch, 4 096 rows per batch.
let payloads: [[UInt8]] = {
    let workload = ReferenceWorkload(.standard)
    return (0..<1_000_000).map { i in
        var json: [UInt8] = []
        ReferenceWorkload.json(workload.order(i), into: &json)
        return json
    }
}()

let source: Source = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    return try! TopologyLoader.load(files: [root.appendingPathComponent("topologies/growth.yaml").path])[0].sources[0]
}()

let eventsPerSecond = BenchmarkMetric.custom("events/s", polarity: .prefersLarger, useScalingFactor: false)

/// The same orders in the schema registry's wire format, as Avro and as Protobuf.
let avroPayloads: [[UInt8]] = {
    let workload = ReferenceWorkload(.standard)
    return (0..<1_000_000).map { i in
        var bytes: [UInt8] = []
        ReferenceWorkload.avro(workload.order(i), schemaID: 1, into: &bytes)
        return bytes
    }
}()
let protobufPayloads: [[UInt8]] = {
    let workload = ReferenceWorkload(.standard)
    return (0..<1_000_000).map { i in
        var bytes: [UInt8] = []
        ReferenceWorkload.protobuf(workload.order(i), schemaID: 1, into: &bytes)
        return bytes
    }
}()

/// A registry holding the reference schema of either format under id 1.
struct ReferenceSchemas: SchemaLookup {
    let kind: RegisteredSchema.Kind
    func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? {
        .success(RegisteredSchema(kind: kind, text: kind == .avro ? ReferenceWorkload.avroSchema : ReferenceWorkload.protobufDescriptor))
    }
}

/// Decodes every payload with `decode`, 4 096 rows per batch; reports events/s.
func run(_ benchmark: Benchmark, _ payloads: [[UInt8]], _ decode: (UnsafeRawBufferPointer, inout ColumnBatch) -> Rejection?) {
    var batch = ColumnBatch(schema: source.schema.types)
    var rejected = 0
    let started = ContinuousClock.now
    for (i, p) in payloads.enumerated() {
        if i % 4_096 == 0 { batch.removeAll() }
        if p.withUnsafeBytes({ decode($0, &batch) }) != nil { rejected += 1 }
    }
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    benchmark.stopMeasurement()
    precondition(rejected == 0)
    benchmark.measurement(eventsPerSecond, Int(Double(payloads.count) / seconds))
    blackHole(batch)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(warmupIterations: 1, maxDuration: .seconds(30), maxIterations: 5)
    Benchmark("decode: 1M reference orders, JSON → columns, one core",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, .instructions, eventsPerSecond])) { benchmark in
        var decoder = JSONEventDecoder(source: source)
        var batch = ColumnBatch(schema: source.schema.types)
        var rejected = 0
        let started = ContinuousClock.now
        for (i, p) in payloads.enumerated() {
            if i % 4_096 == 0 { batch.removeAll() }
            if p.withUnsafeBytes({ decoder.decode($0, into: &batch) }) != nil { rejected += 1 }
        }
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        benchmark.stopMeasurement()
        precondition(rejected == 0)
        benchmark.measurement(eventsPerSecond, Int(Double(payloads.count) / seconds))
        blackHole(batch)
    }
    Benchmark("decode: 1M reference orders, Avro (registry framing) → columns, one core",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, .instructions, eventsPerSecond])) { benchmark in
        var decoder = AvroEventDecoder(source: source, schemas: ReferenceSchemas(kind: .avro))
        run(benchmark, avroPayloads) { decoder.decode($0, into: &$1) }
    }
    Benchmark("decode: 1M reference orders, Protobuf (registry framing) → columns, one core",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal, .instructions, eventsPerSecond])) { benchmark in
        var decoder = ProtobufEventDecoder(source: source, schemas: ReferenceSchemas(kind: .protobuf))
        run(benchmark, protobufPayloads) { decoder.decode($0, into: &$1) }
    }
}
