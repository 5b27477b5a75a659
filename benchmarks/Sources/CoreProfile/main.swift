// A plain run of the core over generated reference events, for `perf record` / callgrind:
//   swift build -c release --product core-profile && perf record -g .build/release/core-profile quick
// `core-profile SCALE --statistics [--repeat N]`: the core alone against the core feeding the
// worker's feature statistics, alternating; `core-profile statistics-micro`: the statistics alone.
import Foundation
import TesseraCore
import TesseraLog
import TesseraSource
import TesseraTopology
import TesseraWorkload

let scale = CommandLine.arguments.dropFirst().first ?? "standard"
/// `decode --formats json,avro --passes 1`: some formats, fewer passes (one for callgrind).
let formats = (CommandLine.arguments.firstIndex(of: "--formats").map { CommandLine.arguments[$0 + 1] } ?? "json,avro,protobuf").split(separator: ",").map(String.init)
let passes = CommandLine.arguments.firstIndex(of: "--passes").flatMap { Int(CommandLine.arguments[$0 + 1]) } ?? 5
/// Decode into columns, one core: 1 M reference events — as JSON, then the same events as Avro
/// and as Protobuf in the schema registry's wire format — best of 5 passes each (`--formats`,
/// `--passes`).
func decodeBenchmarks() throws {
    struct Lookup: SchemaLookup {
        func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? {
            id == 1 ? .success(RegisteredSchema(kind: .avro, text: ReferenceWorkload.avroSchema))
                : .success(RegisteredSchema(kind: .protobuf, text: ReferenceWorkload.protobufDescriptor))
        }
    }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let source = try TopologyLoader.load(files: [root.appendingPathComponent("topologies/growth.yaml").path])[0].sources[0]
    let workload = ReferenceWorkload(.standard)
    let orders = (0..<1_000_000).map { workload.order($0) }

    func measure<D: EventDecoder>(_ name: String, _ decoder: D, _ encode: (ReferenceWorkload.Order, inout [UInt8]) -> Void) {
        var decoder = decoder
        let payloads = orders.map { o in
            var bytes: [UInt8] = []
            encode(o, &bytes)
            return bytes
        }
        var batch = ColumnBatch(schema: source.schema.types)
        var best = Double.infinity
        var rejected = 0
        for _ in 0..<passes {
            let started = ContinuousClock.now
            for (i, p) in payloads.enumerated() {
                if i % 4_096 == 0 { batch.removeAll() }
                if p.withUnsafeBytes({ decoder.decode($0, into: &batch) }) != nil { rejected += 1 }
            }
            best = min(best, (ContinuousClock.now - started) / .seconds(1))
        }
        let bytes = payloads.reduce(0) { $0 + $1.count }
        print("\(name): 1000000 reference events (\(bytes / 1_000_000) bytes on average) in \(String(format: "%.3f", best)) s = \(String(format: "%.2f", 1.0 / best)) M events/s, \(rejected) rejected")
    }
    if formats.contains("json") { measure("decode", JSONEventDecoder(source: source)) { ReferenceWorkload.json($0, into: &$1) } }
    if formats.contains("avro") {
        measure("decode-avro", AvroEventDecoder(source: source, schemas: Lookup())) { ReferenceWorkload.avro($0, schemaID: 1, into: &$1) }
    }
    if formats.contains("protobuf") {
        measure("decode-protobuf", ProtobufEventDecoder(source: source, schemas: Lookup())) { ReferenceWorkload.protobuf($0, schemaID: 2, into: &$1) }
    }
}
/// The feature statistics alone (`ViewStatistics`), hot in cache: 4 096 rows of 5 features
/// (2 integer, 3 double; random values) added 2 000 times, one hop.
if scale == "statistics-micro" {
    var e = EmissionBatch(keyTypes: [.int64], featureTypes: [.int64, .int64, .float64, .float64, .float64])
    var rng = SeededGenerator(seed: 1)
    for i in 0..<4_096 {
        e.eventTimes.append(Int64(i) * 1_000); e.entityIds.append(0); e.closers.append(0); e.keys[0].append(int: 0)
        e.features[0].append(int: Int64.random(in: 0...50, using: &rng)); e.features[1].append(int: Int64.random(in: 0...5_000, using: &rng))
        for f in 2..<5 { e.features[f].append(double: Double.random(in: 1...1000, using: &rng)) }
    }
    var stats = ViewStatistics(features: 5, window: Time.hour, hop: 5 * Time.minute)
    let started = ContinuousClock.now
    for _ in 0..<2_000 { stats.add(e, rows: 0..<e.count) }
    let s = (ContinuousClock.now - started) / .seconds(1)
    print(String(format: "statistics: %.2f ns per value", s / Double(2_000 * 4_096 * 5) * 1e9))
    exit(0)
}
if scale == "decode" {
    try decodeBenchmarks()
    exit(0)
}
guard let parameters = ReferenceWorkload.Parameters.named(scale) else { fatalError("scale: quick | standard | hot | steady | quick-steady") }
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let topology = try TopologyLoader.load(files: [root.appendingPathComponent("topologies/growth.yaml").path])[0]
let workload = ReferenceWorkload(parameters)
// `--events N`: only the first N events of the scale (same times, users and values).
let limit = CommandLine.arguments.firstIndex(of: "--events").flatMap { Int(CommandLine.arguments[$0 + 1]) } ?? parameters.events
let partitions = 4
var batches = (0..<partitions).map { _ in [ColumnBatch]() }
var open = (0..<partitions).map { _ in ColumnBatch(schema: ReferenceWorkload.schema.types) }
for i in 0..<min(limit, parameters.events) {
    let order = workload.order(i)
    let p = Int(StableHash.hash(int: order.userID) % UInt64(partitions))
    ReferenceWorkload.append(order, to: &open[p])
    if open[p].count == 4_096 { batches[p].append(open[p]); open[p].removeAll() }
}
for p in 0..<partitions where open[p].count > 0 { batches[p].append(open[p]) }
var spec = topology.views[0].spec
if let i = CommandLine.arguments.firstIndex(of: "--features"), i + 1 < CommandLine.arguments.count, let n = Int(CommandLine.arguments[i + 1]) {
    spec = try ViewSpec(name: spec.name, schema: spec.schema, keyFields: spec.keyFields, features: Array(spec.features.prefix(n)))
}
let repeats = CommandLine.arguments.firstIndex(of: "--repeat").flatMap { Int(CommandLine.arguments[$0 + 1]) } ?? 1
var times: [Double] = []
var tails: [Double] = []
var tailEvents = 0
var emitted = 0
var cores: [PartitionAggregator] = []
/// The last 20 % of the batches go through here, so that a profiler can look at them alone
/// (`valgrind --tool=callgrind --toggle-collect='*steadyIngest*'`).
@inline(never) func steadyIngest(_ core: inout PartitionAggregator, _ batch: ColumnBatch) { core.ingest(batch) }
// `--statistics`: every other repeat also feeds each partition's closed rows to the feature
// statistics the worker keeps (`ViewStatistics`), to measure their cost against the core alone.
let statistics = CommandLine.arguments.contains("--statistics")
var withStatistics: [Double] = []
var rowsGathered = 0, rowsPerPass = 0
for r in 0..<(statistics ? 2 * repeats : repeats) {
    let gathering = statistics && r % 2 == 1
    var stats = (0..<partitions).map { _ in ViewStatistics(features: spec.features.count, window: Time.hour, hop: 5 * Time.minute) }
    cores = (0..<partitions).map { _ in PartitionAggregator(views: [spec], allowedLateness: topology.sources[0].allowedLateness) }
    let started = ContinuousClock.now
    emitted = 0
    let rounds = batches.map(\.count).max()!
    var tailStart = started
    tailEvents = 0
    for b in 0..<rounds {
        if b == rounds * 8 / 10 { tailStart = .now }
        for p in 0..<partitions where b < batches[p].count {
            if b >= rounds * 8 / 10 { steadyIngest(&cores[p], batches[p][b]) } else { cores[p].ingest(batches[p][b]) }
            emitted += cores[p].views[0].emissions.count
            if gathering {
                let closed = cores[p].views[0].emissions.closedCount
                stats[p].add(cores[p].views[0].emissions, rows: 0..<closed)
                rowsGathered += closed
            }
            cores[p].removeAllEmissions()
            if b >= rounds * 8 / 10 { tailEvents += batches[p][b].count }
        }
    }
    if gathering {
        withStatistics.append((ContinuousClock.now - started) / .seconds(1))
        rowsPerPass = rowsGathered
        rowsGathered = 0
        continue
    }
    times.append((ContinuousClock.now - started) / .seconds(1))
    tails.append((ContinuousClock.now - tailStart) / .seconds(1))
}
let seconds = times.min()!
let footprints = cores.map { $0.views[0].footprint }
let bytes = footprints.reduce(0) { $0 + $1.bytes }, used = footprints.reduce(0) { $0 + $1.usedBytes }
let entities = footprints.reduce(0) { $0 + $1.entities }, tiles = footprints.reduce(0) { $0 + $1.tiles }
if CommandLine.arguments.contains("--memory") {
    for c in cores { print(c.views[0].memoryReport) }
}
let all = times.map { String(format: "%.2f", $0) }.joined(separator: " ")
let total = min(limit, parameters.events)
print("\(scale): \(total) events in \(String(format: "%.2f", seconds)) s = \(String(format: "%.2f", Double(total) / seconds / 1e6)) M events/s (best of \(all) s); last 20 %: \(String(format: "%.2f", Double(tailEvents) / tails.min()! / 1e6)) M events/s; \(emitted) emissions, state \(used >> 20) MiB in use (\(bytes >> 20) MiB reserved): \(entities) entities, \(tiles) non-empty tiles, \(used / max(1, entities)) B per entity, \(used / max(1, tiles)) B per non-empty tile")
if statistics {
    let on = withStatistics.min()!
    print(String(format: "statistics: core alone %.3f s, core + feature statistics %.3f s (best of %d each, alternating): statistics cost %.1f %% of the core's time, %.1f ns per closed row (%d rows, %d features)",
                 seconds, on, repeats, (on / seconds - 1) * 100, (on - seconds) / Double(rowsPerPass) * 1e9, rowsPerPass, spec.features.count))
}
if CommandLine.arguments.contains("--images") {
    // What a checkpoint holds a partition back for: each partition's image length counted (the
    // state's bulk is counted where it lies), then its checkpoint streamed to a temporary file
    // (direct I/O, sealed on the way, fsynced), in a directory under $TMPDIR.
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-core-profile-\(getpid())").path
    let store = CheckpointStore(stateDirectory: dir, group: "g")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for pass in 1...3 {
        var line: [String] = []
        for p in cores.indices {
            let started = ContinuousClock.now
            let length = cores[p].write(imageTo: ByteCounter())
            let counted = ContinuousClock.now
            let written = try store.write(topic: "t", partition: Int32(p), position: .init(nextOffset: 0, lastCreated: 0, nextSequences: [:]), state: cores[p])
            let s = (ContinuousClock.now - counted) / .seconds(1)
            unlink(written.temporary)
            line.append(String(format: "%d MiB counted in %.1f ms, written in %.0f ms (%.2f GB/s)", length >> 20,
                               (counted - started) / .milliseconds(1), s * 1e3, Double(length) / s / 1e9))
        }
        print("checkpoint \(pass): " + line.joined(separator: "; "))
    }
    // What the worker loop itself does for a checkpoint: hands over a copy that shares the
    // state's memory.
    var line: [String] = []
    for p in cores.indices {
        let started = ContinuousClock.now
        let copy = cores[p]
        let handed = ContinuousClock.now
        line.append(String(format: "%d MiB handed over in %.3f ms", cores[p].memory >> 20, (handed - started) / .milliseconds(1)))
        withExtendedLifetime(copy) {}
    }
    print("hand-over: " + line.joined(separator: "; "))
}
