import ArgumentParser
import Foundation
import Logging
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraLog
import TesseraOffline
import TesseraOnline
import TesseraProcess
import TesseraRedis
import TesseraTopology
import TesseraWorkload

/// `tessera demo`: the whole pipeline on an embedded default — librdkafka's in-process mock
/// cluster as the broker, a redis-server on a free loopback port, generated orders, the worker —
/// then a few online rows and a point-in-time lookup.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the whole pipeline on an embedded Kafka and a local redis-server, then show what it wrote.")

    @Option(name: .customLong("topology"), help: "Topology file with the reference view.") var topology = "topologies/growth.yaml"
    @Option(help: "Number of generated orders.") var events = 100_000
    @Option(help: "Number of distinct users.") var users = 5_000
    @Option(help: "Where to keep the offline log and Redis's files (default: a new temporary directory).") var directory: String?

    func run() throws {
        var logger = makeLogger("tessera-demo")
        logger.logLevel = .warning
        let loaded = try loadTopologies([topology])
        guard let view = loaded.flatMap(\.views).first(where: { $0.name == "user_stats" }),
              let source = loaded.flatMap(\.sources).first(where: { $0.name == view.source }), source.schema == ReferenceWorkload.schema else {
            printError("\(topology) must hold the reference view user_stats over the orders of docs/workload.md")
            throw ExitCode(2)
        }
        let dir = directory ?? NSTemporaryDirectory() + "tessera-demo-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        print("tessera demo — everything under \(dir)\n")

        // 1. An in-process Kafka and a real redis-server.
        let cluster = try MockKafkaCluster(brokers: 1, logger: logger)
        try cluster.createTopic(source.topic, partitions: 4)
        let redis = try RedisServerProcess(directory: "\(dir)/redis")
        defer { redis.stop() }
        print("  Kafka    librdkafka \(librdkafkaVersion) mock cluster at \(cluster.bootstrapServers), topic \(source.topic) (4 partitions)")
        print("  Redis    redis-server pid \(redis.pid) at \(redis.url)")

        // 2. Orders, keyed by user.
        let params = ReferenceWorkload.Parameters(events: events, users: users, skew: 1.1, span: 2 * Time.day, disorder: 2 * Time.second)
        let workload = ReferenceWorkload(params)
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: logger)
        var json: [UInt8] = []
        for i in 0..<params.events {
            let o = workload.order(i)
            json.removeAll(keepingCapacity: true)
            ReferenceWorkload.json(o, into: &json)
            try producer.send(topic: source.topic, key: Array(String(o.userID).utf8), value: json)
        }
        try producer.flush()
        print("  Produced \(params.events) orders of \(params.users) users over 2 days, up to 2 s out of order\n")

        // 3. The worker, until every partition is drained.
        var options = WorkerOptions(topologies: loaded, brokers: cluster.bootstrapServers,
                                    redis: try RedisEndpoint(url: redis.url, environment: [:]), offlineDirectory: "\(dir)/offline")
        options.group = "tessera-demo"
        options.stateDirectory = "\(dir)/offline/_state"
        options.untilEnd = true
        options.idleTimeout = nil
        options.statsInterval = nil
        options.kafkaProperties = [("session.timeout.ms", "6000")]
        let started = ContinuousClock.now
        let stats = try WorkerService(options: options, logger: logger).runToEnd()
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        print("  Worker   \(stats.events) events in \(String(format: "%.1f", seconds)) s: \(stats.aggregated) aggregated, \(stats.late) late, \(stats.deadLettered) dead-lettered")
        print("           \(stats.emissions) emissions → \(stats.offlineRows) offline rows (Parquet), \(stats.redisWrites) Redis writes\n")

        // 4. What serving reads: online rows, straight from Redis.
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: logger)
        print("Online rows (HGETALL tessera:user_stats:<user_id>):")
        for user in [1, 2, 42] as [Int64] {
            let row = try OnlineRow.fetch(view: view, key: [.int(user)], layout: OnlineLayout(), connection: connection)
            print("  " + row.json(view: view))
        }

        // 5. What a training set sees: the offline row current at a past time.
        let history = try OfflineHistory(directory: "\(dir)/offline", view: view, key: [.int(1)])
        if history.rows.count > 2 {
            let mid = history.rows[history.rows.count / 2].time + 1
            let asOf = history.row(asOf: mid)!
            print("\nPoint-in-time lookup: user_id=1 as of \(RFC3339.format(mid)) (\(history.rows.count) offline rows for this user):")
            let names = view.spec.features.map(\.name)
            print("  row current since \(RFC3339.format(asOf.time)): " + zip(names, asOf.features).map { "\($0)=\($1.map(\.description) ?? "null")" }.joined(separator: ", "))
            let now = history.rows.last!
            print("  latest row (\(RFC3339.format(now.time))) equals Redis: \(try OnlineRow.fetch(view: view, key: [.int(1)], layout: OnlineLayout(), connection: connection).matches(now.features, view: view))")
        }
        print("\nInspect the offline log with: tessera inspect \(dir)/offline")
    }
}
