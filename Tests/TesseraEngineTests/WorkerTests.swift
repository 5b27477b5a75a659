import Foundation
import Testing
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload

@Suite("The worker: mock Kafka → Redis and the offline log", .serialized)
struct WorkerTests {
    @Test("a drained run satisfies invariants 1–3 against the oracle")
    func drained() throws {
        let topology = try growth()
        let view = topology.views[0]
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 4)
        let workload = ReferenceWorkload(.init(events: 12_000, users: 400, skew: 1.1, span: 2 * Time.day, disorder: 3 * Time.second))
        try produceOrders(workload, 0..<12_000, to: "orders", brokers: cluster.bootstrapServers)
        let redis = try RedisServer()
        let offline = temporaryDirectory("drained")
        let worker = RunningWorker(try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true))
        let stats = try worker.join()
        #expect(stats.events == 12_000)
        #expect(stats.aggregated + stats.late == 12_000)
        let o = try oracles(brokers: cluster.bootstrapServers, topic: "orders", source: topology.sources[0], spec: view.spec)
        #expect(o.values.reduce(0) { $0 + $1.late } == stats.late)
        #expect(try checkInvariants(view: view, oracles: o, offline: offline, redis: redis) > 100)
    }

    @Test("while catching up, rows go to Redis once per quarter of the lag, between 1 and 5 s")
    func catchUpInterval() {
        #expect(Worker.catchUpInterval(lag: .milliseconds(1_500)) == .seconds(1))
        #expect(Worker.catchUpInterval(lag: .seconds(8)) == .seconds(2))
        #expect(Worker.catchUpInterval(lag: .seconds(10)) == .milliseconds(2_500))
        #expect(Worker.catchUpInterval(lag: .seconds(18)) == .milliseconds(4_500))
        #expect(Worker.catchUpInterval(lag: .seconds(20)) == .seconds(5))
        #expect(Worker.catchUpInterval(lag: .seconds(3_600)) == .seconds(5))
    }

    @Test("a second worker joins and leaves mid-stream; partitions move with their state")
    func rebalance() throws {
        let topology = try growth()
        let view = topology.views[0]
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 4)
        let workload = ReferenceWorkload(.init(events: 9_000, users: 300, skew: 1.1, span: 2 * Time.day, disorder: 0))
        let redis = try RedisServer()
        let offline = temporaryDirectory("rebalance")
        let options = try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: false)

        try produceOrders(workload, 0..<3_000, to: "orders", brokers: cluster.bootstrapServers)
        let a = RunningWorker(options)
        #expect(a.wait { $0.events == 3_000 })
        let b = RunningWorker(options)
        // Wait for the rebalance: the newcomer holds partitions, the first worker gave them up.
        #expect(b.wait { $0.partitions > 0 } && a.wait { $0.partitions < 4 })
        try produceOrders(workload, 3_000..<6_000, to: "orders", brokers: cluster.bootstrapServers)
        #expect(a.wait { _ in a.stats.events + b.stats.events == 6_000 })
        #expect(b.stats.events > 0, "the second worker received no partition")
        let bStats = try b.stop()
        #expect(a.wait { $0.partitions == 4 })
        try produceOrders(workload, 6_000..<9_000, to: "orders", brokers: cluster.bootstrapServers)
        #expect(a.wait { $0.events + bStats.events == 9_000 })
        let aStats = try a.stop()
        // Every record was processed exactly once across the two workers.
        #expect(aStats.events + bStats.events == 9_000)
        // A last run drains nothing new but closes the rows still open at each stream time,
        // as any run that reaches the end of its input does.
        var last = options
        last.untilEnd = true
        #expect(try RunningWorker(last).join().events == 0)
        let o = try oracles(brokers: cluster.bootstrapServers, topic: "orders", source: topology.sources[0], spec: view.spec)
        #expect(try checkInvariants(view: view, oracles: o, offline: offline, redis: redis) > 100)
    }
}
