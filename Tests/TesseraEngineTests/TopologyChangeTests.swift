import Foundation
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload
import Testing

/// Restarting the worker with a changed topology (docs/design.md, "Delivery and recovery"): added features start from empty
/// state and the saved ones carry on; a changed definition is refused, saying how to go on.
@Suite("Topology changes across restarts", .serialized)
struct TopologyChangeTests {
    /// growth.yaml with its text edited.
    static func edited(_ edit: (String) -> String) throws -> Topology {
        let text = try String(contentsOfFile: packageRoot.appendingPathComponent("topologies/growth.yaml").path, encoding: .utf8)
        let path = temporaryDirectory("topology") + "/growth.yaml"
        try edit(text).write(toFile: path, atomically: true, encoding: .utf8)
        return try TopologyLoader.load(files: [path])[0]
    }

    @Test("a feature added to the view starts from empty state; a changed window is refused")
    func addedAndChanged() throws {
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 2)
        let workload = ReferenceWorkload(.init(events: 4_000, users: 50, skew: 1.1, span: Time.day, disorder: 0))
        let redis = try RedisServer()
        let offline = temporaryDirectory("topology-change")
        try produceOrders(workload, 0..<2_000, to: "orders", brokers: cluster.bootstrapServers)
        _ = try RunningWorker(try workerOptions(try growth(), brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)).join()

        let added = try Self.edited {
            $0.replacingOccurrences(of: "      - {name: total_orders, aggregate: count, window: lifetime}",
                                    with: "      - {name: total_orders, aggregate: count, window: lifetime}\n      - {name: orders_since_change, aggregate: count, window: lifetime}")
        }
        #expect(added.views[0].spec.features.count == (try growth()).views[0].spec.features.count + 1)
        try produceOrders(workload, 2_000..<4_000, to: "orders", brokers: cluster.bootstrapServers)
        let stats = try RunningWorker(try workerOptions(added, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)).join()
        #expect(stats.events == 2_000)
        // The saved lifetime count carries on over both halves; the added one counts the second.
        var before: [Int64: Int64] = [:], after: [Int64: Int64] = [:]
        for i in 0..<4_000 {
            let o = workload.order(i)
            before[o.userID, default: 0] += 1
            if i >= 2_000 { after[o.userID, default: 0] += 1 }
        }
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        for (user, total) in before {
            let row = try OnlineRow.fetch(view: added.views[0], key: [.int(user)], layout: OnlineLayout(), connection: connection)
            #expect(row.fields["total_orders"] == .int(total), "user \(user)")
            if let since = after[user] { #expect(row.fields["orders_since_change"] == .int(since), "user \(user)") }
        }

        let changed = try Self.edited {
            $0.replacingOccurrences(of: "{name: total_orders_7d, aggregate: count, window: 7d}", with: "{name: total_orders_7d, aggregate: count, window: 14d}")
                .replacingOccurrences(of: "      - {name: total_orders, aggregate: count, window: lifetime}",
                                      with: "      - {name: total_orders, aggregate: count, window: lifetime}\n      - {name: orders_since_change, aggregate: count, window: lifetime}")
        }
        #expect(throws: EngineError.self) {
            _ = try RunningWorker(try workerOptions(changed, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)).join()
        }
        do {
            _ = try RunningWorker(try workerOptions(changed, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)).join()
        } catch {
            #expect("\(error)".contains("feature total_orders_7d changed"), "\(error)")
            #expect("\(error)".contains("rebuild the state"), "\(error)")
        }
    }
}
