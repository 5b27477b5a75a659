import Foundation
import Logging
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraLog
import TesseraOffline
import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology
import TesseraTraining
import TesseraWorkload
import Testing

/// Silent unless TESSERA_TEST_LOG is set.
let quiet: Logger = {
    var l = Logger(label: "test")
    l.logLevel = ProcessInfo.processInfo.environment["TESSERA_TEST_LOG"] != nil ? .info : .critical
    return l
}()

@Suite("Invariant 3 through the point-in-time join", .serialized)
struct OnlineOfflineTests {
    @Test("after a drained run, the training set at each entity's last emission equals the Redis row")
    func onlineEqualsOffline() throws {
        let topology = try TopologyLoader.load(files: [packageRoot.appendingPathComponent("topologies/growth.yaml").path])[0]
        let view = topology.views[0]
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 4)
        let workload = ReferenceWorkload(.init(events: 6_000, users: 250, skew: 1.1, span: 3 * Time.day, disorder: 0))
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        var json: [UInt8] = []
        for i in 0..<6_000 {
            let o = workload.order(i)
            json.removeAll(keepingCapacity: true)
            ReferenceWorkload.json(o, into: &json)
            try producer.send(topic: "orders", key: Array(String(o.userID).utf8), value: json)
        }
        try producer.flush()
        let redis = try RedisServer()
        let offline = temporaryDirectory("online-offline")
        var options = WorkerOptions(topologies: [topology], brokers: cluster.bootstrapServers,
                                    redis: try RedisEndpoint(url: redis.url, environment: [:]), offlineDirectory: offline)
        options.stateDirectory = offline + "/_state"
        options.untilEnd = true
        options.idleTimeout = nil
        options.statsInterval = nil
        // Every poll of at most 500 records rolls the files: each partition's rows span several
        // files whatever the machine's speed, for the compaction below to merge.
        options.rollInterval = .milliseconds(1)
        options.batchSize = 500
        options.kafkaProperties = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")]
        let stats = try runToEnd(options)
        #expect(stats.events == 6_000)

        // Each entity's last offline row (the partition's order is the log's) and each partition's
        // final stream time.
        var last: [Int64: (time: Micros, created: Micros)] = [:]
        var partitionOf: [Int64: String] = [:]
        var streamTime: [String: Micros] = [:]
        for file in OfflineLog.files(directory: offline, view: view.name) {
            let partition = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
            let reader = try ParquetFileReader(path: file)
            let names = reader.schema.fields.map(\.name)
            let columns = try reader.readAll(columns: [0, names.firstIndex(of: "event_timestamp")!, names.firstIndex(of: "created_timestamp")!])
            for i in 0..<columns[0].count {
                let user = columns[0].ints[i], t = columns[1].ints[i], c = columns[2].ints[i]
                if let l = last[user], (l.time, l.created) > (t, c) { continue }
                last[user] = (t, c)
                partitionOf[user] = partition
                streamTime[partition] = max(streamTime[partition] ?? .min, t)
            }
        }
        #expect(last.count > 200)

        // The training set asks, for every entity, at its last emission's event time and at its
        // partition's final stream time. At the first the answer is the last row. At the second it
        // is the last row too if it is within the view's TTL (1 day), else null: the offline log
        // then says "expired", while Redis keeps the row until the TTL passes in wall-clock time,
        // so only the first query is compared with Redis, and the second with the first.
        let users = last.keys.sorted()
        var user = Column(type: .int64), ts = Column(type: .int64)
        for u in users {
            user.append(int: u)
            ts.append(int: last[u]!.time)
        }
        for u in users {
            user.append(int: u)
            ts.append(int: streamTime[partitionOf[u]!]!)
        }
        let frame = try Frame(names: ["user_id", "event_timestamp"], columns: [user, ts], kinds: [.typed(.int64), .typed(.timestampMicros)])
        let set = try HistoricalRetrieval(views: [view], offlineDirectory: offline)
            .join(frame, features: [FeatureReference(view: view.name, feature: "*")])
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        var mismatches = 0
        for (i, u) in users.enumerated() where mismatches < 5 {
            let online = try OnlineRow.fetch(view: view, key: [.int(u)], layout: OnlineLayout(), connection: connection)
            #expect(online.eventTime == last[u]!.time && online.createdTime == last[u]!.created, "user \(u)")
            let expired = streamTime[partitionOf[u]!]! - last[u]!.time > view.ttl
            for (f, feature) in view.spec.features.enumerated() {
                let offline = set.columns[2 + f].value(at: i)
                let atStreamTime = set.columns[2 + f].value(at: users.count + i)
                if offline != online.fields[feature.name] {
                    Issue.record("user \(u): \(feature.name) offline \(String(describing: offline)), online \(String(describing: online.fields[feature.name]))")
                    mismatches += 1
                }
                if atStreamTime != (expired ? nil : offline) {
                    Issue.record("user \(u): \(feature.name) at the stream time \(String(describing: atStreamTime)), expired \(expired)")
                    mismatches += 1
                }
            }
        }

        // Compaction against the worker's checkpoints: after a drained run they cover every file,
        // so each partition ends as one file, and the training set does not change.
        let checkpoints = Compaction.checkpoints(stateDirectory: offline + "/_state", group: options.group,
                                                 topics: [view.name: topology.sources[0].topic])
        let reports = try Compaction(directory: offline, checkpointed: checkpoints).run(views: [view])
        #expect(reports.count == 4 && reports.allSatisfy { $0.filesAfter == 1 }, "\(reports)")
        #expect(reports.contains { $0.filesBefore > 1 })
        let again = try HistoricalRetrieval(views: [view], offlineDirectory: offline)
            .join(frame, features: [FeatureReference(view: view.name, feature: "*")])
        #expect(again.columns == set.columns)
    }

    /// Runs a worker with `untilEnd` as `tessera run` runs it, and returns its stats.
    func runToEnd(_ options: WorkerOptions) throws -> WorkerStats {
        let service = try WorkerService(options: options, logger: quiet)
        service.start()
        return try service.join(timeout: .seconds(180))
    }
}
