import Benchmark
import Foundation
import TesseraCore
import TesseraSource
import TesseraTopology
import TesseraWorkload

/// JSON decode into columns on one core: 1 M reference orders (≈ 115 bytes each) decoded
/// straight from their bytes into the orders source's column batch, 4 096 rows per batch.
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
}
