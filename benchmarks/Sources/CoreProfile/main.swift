// A plain run of the core over generated reference events, for `perf record` / callgrind:
//   swift build -c release --product core-profile && perf record -g .build/release/core-profile quick
import Foundation
import TesseraCore
import TesseraTopology
import TesseraWorkload

let scale = CommandLine.arguments.dropFirst().first ?? "standard"
guard let parameters = ReferenceWorkload.Parameters.named(scale) else { fatalError("scale: quick | standard | hot") }
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let topology = try TopologyLoader.load(files: [root.appendingPathComponent("topologies/growth.yaml").path])[0]
let workload = ReferenceWorkload(parameters)
let partitions = 4
var batches = (0..<partitions).map { _ in [ColumnBatch]() }
var open = (0..<partitions).map { _ in ColumnBatch(schema: ReferenceWorkload.schema.types) }
for i in 0..<parameters.events {
    let order = workload.order(i)
    let p = Int(StableHash.hash(int: order.userID) % UInt64(partitions))
    ReferenceWorkload.append(order, to: &open[p])
    if open[p].count == 4_096 { batches[p].append(open[p]); open[p].removeAll() }
}
for p in 0..<partitions where open[p].count > 0 { batches[p].append(open[p]) }
var cores = (0..<partitions).map { _ in PartitionAggregator(views: [topology.views[0].spec], allowedLateness: topology.sources[0].allowedLateness) }
let started = ContinuousClock.now
var emitted = 0
for b in 0..<batches.map(\.count).max()! {
    for p in 0..<partitions where b < batches[p].count {
        cores[p].ingest(batches[p][b])
        emitted += cores[p].views[0].emissions.count
        cores[p].removeAllEmissions()
    }
}
let seconds = (ContinuousClock.now - started) / .seconds(1)
let bytes = cores.reduce(0) { $0 + $1.views[0].footprint.bytes }
print("\(scale): \(parameters.events) events in \(String(format: "%.2f", seconds)) s = \(String(format: "%.2f", Double(parameters.events) / seconds / 1e6)) M events/s, \(emitted) emissions, state \(bytes >> 20) MiB")
