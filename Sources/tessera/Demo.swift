import ArgumentParser
import Foundation
import TesseraCore
import TesseraTopology
import TesseraWorkload

/// `tessera demo`: the reference workload through the aggregation core, in memory.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the reference view over generated orders and show online rows and a point-in-time lookup.")

    @Option(help: "Topology file with the reference view.")
    var topology = "topologies/growth.yaml"

    @Option(help: "Number of generated orders.")
    var events = 200_000

    @Option(help: "Number of distinct users.")
    var users = 20_000

    func run() throws {
        let topologies: [Topology]
        do { topologies = try TopologyLoader.load(files: [topology]) } catch {
            for e in error.errors { printError(e.description) }
            throw ExitCode(2)
        }
        guard let view = topologies.first?.views.first(where: { $0.name == "user_stats" }),
              let source = topologies.first?.source(named: view.source) else {
            printError("\(topology) has no user_stats view")
            throw ExitCode(2)
        }
        guard source.schema == ReferenceWorkload.schema else {
            printError("the demo generates the orders of WORKLOAD.md; \(source.name)'s fields differ")
            throw ExitCode(2)
        }
        let params = ReferenceWorkload.Parameters(events: events, users: users, skew: 1.1, span: 2 * Time.day, disorder: 2 * Time.second)
        let workload = ReferenceWorkload(params)
        let partitions = 4
        var cores = (0..<partitions).map { _ in PartitionAggregator(views: [view.spec], allowedLateness: source.allowedLateness) }
        var batches = (0..<partitions).map { _ in ColumnBatch(schema: source.schema.types) }
        var online: [Int64: (Micros, [Value?])] = [:]
        var offline: [Int64: [(Micros, [Value?])]] = [:]
        var emitted = 0, rejected = 0
        let started = ContinuousClock.now

        func drain(_ p: Int) {
            rejected += cores[p].ingest(batches[p]).count
            batches[p].removeAll()
            let e = cores[p].views[0].emissions
            emitted += e.count
            for i in 0..<e.count {
                let row = e.row(i)
                guard case .int(let user) = row.key[0] else { continue }
                online[user] = (row.time, row.features)
                if user <= 3 { offline[user, default: []].append((row.time, row.features)) }
            }
            cores[p].removeAllEmissions()
        }
        for i in 0..<params.events {
            let order = workload.order(i)
            let p = Int(order.userID % Int64(partitions))
            ReferenceWorkload.append(order, to: &batches[p])
            if batches[p].count == 2_048 { drain(p) }
        }
        for p in 0..<partitions { drain(p) }
        let elapsed = ContinuousClock.now - started

        let names = view.features.map(\.name)
        print("tessera demo: \(params.events) orders of \(params.users) users over 2 days, 4 partitions, view \(view.name)")
        print("  \(emitted) emissions, \(rejected) late events rejected, \(online.count) entities online, \(elapsed.formatted(.units(allowed: [.milliseconds])))")
        print("\nonline rows (what serving reads):")
        for user in [1, 2, 3] as [Int64] {
            guard let (t, values) = online[user] else { continue }
            print("  user_id=\(user) as of \(Self.format(t))")
            for (n, v) in zip(names, values) { print("    \(n.padding(toLength: 22, withPad: " ", startingAt: 0)) \(v.map(\.description) ?? "null")") }
        }
        if let rows = offline[1], rows.count > 2 {
            let mid = rows[rows.count / 2].0 + 1
            let asOf = rows.last { $0.0 <= mid }!
            print("\npoint-in-time lookup (what a training row at \(Self.format(mid)) sees for user_id=1):")
            print("  row current since \(Self.format(asOf.0)): " + zip(names, asOf.1).prefix(4).map { "\($0)=\($1.map(\.description) ?? "null")" }.joined(separator: ", ") + ", …")
        }
    }

    static func format(_ t: Micros) -> String {
        Date(timeIntervalSince1970: Double(t) / 1e6).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }
}
