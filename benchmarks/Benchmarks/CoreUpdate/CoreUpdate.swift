import Benchmark
import Foundation
import TesseraCore
import TesseraTopology
import TesseraWorkload

/// The reference view (topologies/growth.yaml) over a scale of docs/workload.md generated in
/// memory — `standard`: 10 M orders of 1 M Zipf(1.1) users over 7 days; `steady`: 20 M over 28
/// days, where the 7-day windows slide for three quarters of the run — disordered by up to 2 s,
/// split into 4 partitions by user as Kafka would, fed in batches of 4 096 rows, all on one
/// core. Emissions are produced (every change of every row) and then dropped.
struct Workbench: Sendable {
    let spec: ViewSpec
    let lateness: Micros
    /// Batches per partition, in arrival order.
    let batches: [[ColumnBatch]]
    let events: Int

    static let partitions = 4
    static let batchSize = 4_096

    init(_ parameters: ReferenceWorkload.Parameters) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let topologies = try! TopologyLoader.load(files: [root.appendingPathComponent("topologies/growth.yaml").path])
        let view = topologies[0].views[0]
        spec = view.spec
        lateness = topologies[0].sources[0].allowedLateness
        let workload = ReferenceWorkload(parameters)
        var all = (0..<Workbench.partitions).map { _ in [ColumnBatch]() }
        var open = (0..<Workbench.partitions).map { _ in ColumnBatch(schema: ReferenceWorkload.schema.types) }
        for i in 0..<parameters.events {
            let order = workload.order(i)
            let p = Int(StableHash.hash(int: order.userID) % UInt64(Workbench.partitions))
            ReferenceWorkload.append(order, to: &open[p])
            if open[p].count == Workbench.batchSize {
                all[p].append(open[p])
                open[p] = ColumnBatch(schema: ReferenceWorkload.schema.types)
            }
        }
        for p in 0..<Workbench.partitions where open[p].count > 0 { all[p].append(open[p]) }
        batches = all
        events = parameters.events
    }

    /// Feeds batches round-robin across partitions (as a consumer would see them), from batch
    /// index `from` up to `to` of each partition. Returns the number of emissions.
    func run(_ cores: inout [PartitionAggregator], from: Int = 0, to: Int = .max) -> Int {
        var emitted = 0
        let rounds = batches.map(\.count).max()!
        for b in from..<min(to, rounds) {
            for p in 0..<Workbench.partitions where b < batches[p].count {
                cores[p].ingest(batches[p][b])
                emitted += cores[p].views[0].emissions.count
                cores[p].removeAllEmissions()
            }
        }
        return emitted
    }

    func fresh() -> [PartitionAggregator] {
        (0..<Workbench.partitions).map { _ in PartitionAggregator(views: [spec], allowedLateness: lateness) }
    }
}

nonisolated(unsafe) var workbenches: [String: Workbench] = [:]
/// Generated on first use (each scale takes a few seconds and 1–2 GiB).
func workbench(_ name: String) -> Workbench {
    if let w = workbenches[name] { return w }
    let w = Workbench(ReferenceWorkload.Parameters.named(name)!)
    workbenches = [name: w]  // one scale in memory at a time
    return w
}

enum Report {
    static let eventsPerSecond = BenchmarkMetric.custom("events/s", polarity: .prefersLarger, useScalingFactor: false)
    static let emissions = BenchmarkMetric.custom("emissions", polarity: .prefersSmaller, useScalingFactor: false)
    static let stateBytes = BenchmarkMetric.custom("state bytes", polarity: .prefersSmaller, useScalingFactor: false)
    static let bytesPerEntity = BenchmarkMetric.custom("state bytes per entity", polarity: .prefersSmaller, useScalingFactor: false)
    static let bytesPerTile = BenchmarkMetric.custom("state bytes per non-empty tile", polarity: .prefersSmaller, useScalingFactor: false)
    static let tiles = BenchmarkMetric.custom("non-empty tiles", polarity: .prefersSmaller, useScalingFactor: false)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(warmupIterations: 0, maxDuration: .seconds(120), maxIterations: 3)

    for scale in ["standard", "steady"] {
        Benchmark(
            "core: reference view, \(scale) scale, one core",
            configuration: .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .peakMemoryResident]
                + [Report.eventsPerSecond, Report.emissions, Report.stateBytes, Report.bytesPerEntity, Report.bytesPerTile, Report.tiles])
        ) { benchmark in
            let bench = workbench(scale)
            var cores = bench.fresh()
            let started = ContinuousClock.now
            let emitted = bench.run(&cores)
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            benchmark.stopMeasurement()
            let footprints = cores.map { $0.views[0].footprint }
            let bytes = footprints.reduce(0) { $0 + $1.usedBytes }   // in use (about what is resident), not reserved
            let entities = footprints.reduce(0) { $0 + $1.entities }
            let tiles = footprints.reduce(0) { $0 + $1.tiles }
            benchmark.measurement(Report.eventsPerSecond, Int(Double(bench.events) / seconds))
            benchmark.measurement(Report.emissions, emitted)
            benchmark.measurement(Report.stateBytes, bytes)
            benchmark.measurement(Report.bytesPerEntity, bytes / max(1, entities))
            benchmark.measurement(Report.bytesPerTile, bytes / max(1, tiles))
            benchmark.measurement(Report.tiles, tiles)
            blackHole(cores)
        }

        // Steady state: the state has grown over the first 80 % of the stream; allocations are
        // counted over the last 20 % only.
        Benchmark(
            "core: steady state, last 20 % of the \(scale) events",
            configuration: .init(metrics: [.wallClock, .mallocCountTotal, .instructions] + [Report.eventsPerSecond])
        ) { benchmark in
            let bench = workbench(scale)
            var cores = bench.fresh()
            let rounds = bench.batches.map(\.count).max()!
            let cut = rounds * 8 / 10
            _ = bench.run(&cores, to: cut)
            let measured = bench.batches.reduce(0) { total, p in total + p.dropFirst(cut).reduce(0) { $0 + $1.count } }
            benchmark.startMeasurement()
            let started = ContinuousClock.now
            blackHole(bench.run(&cores, from: cut))
            let seconds = (ContinuousClock.now - started) / .seconds(1)
            benchmark.stopMeasurement()
            benchmark.measurement(Report.eventsPerSecond, Int(Double(measured) / seconds))
            blackHole(cores)
        }
    }
}
