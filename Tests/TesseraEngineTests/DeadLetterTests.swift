import Foundation
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraOnline
import TesseraRedis
import TesseraSource
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload
import Testing

@Suite("Dead letters", .serialized)
struct DeadLetterTests {
    /// Bad events of every kind of docs/design.md, "Bad input and faults", each with its record key
    /// (`key` is the good events' key for its user) and the reason it must get. Those the old core
    /// let move stream time (a missing join key, a far-future stamp) are stamped ahead, so that
    /// they would make the good events after them late if they left a trace.
    static func salt(_ i: Int, time: Int64, key: [UInt8], user: Int64) -> (key: [UInt8], payload: [UInt8], reason: DeadLetterReason) {
        let now = Int64(Date().timeIntervalSince1970 * 1_000)
        switch i % 11 {
        case 0: return (key, Array("not json at all".utf8), .notJSON)
        case 1: return (key, Array(#"{"user_id": "seven", "event_timestamp": \#(time)}"#.utf8), .wrongType)
        case 2: return (key, Array(#"{"user_id": null, "amount": 3, "event_timestamp": \#(time + 3_600_000)}"#.utf8), .missingKey)
        case 3: return (key, Array(#"{"user_id": \#(user), "amount": 3}"#.utf8), .missingTimestamp)
        case 4: return (key, Array(#"{"user_id": \#(user), "event_timestamp": 99999999999999999}"#.utf8), .timestampOutOfRange)
        case 5: return (key, Array(#"{"user_id": \#(user), "status": ""#.utf8) + [0xC3, 0x28] + Array(#"", "event_timestamp": \#(time)}"#.utf8), .invalidUTF8)
        case 6: return (key, Array(#"{"user_id": \#(user), "status": ""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 5_000) + Array(#"", "event_timestamp": \#(time)}"#.utf8), .oversized)
        case 7: return (key, Array(#"{"user_id": \#(user), "amount": 1, "status": "paid", "event_timestamp": \#(now + 30 * 86_400_000)}"#.utf8), .futureTimestamp)
        case 8: return (Array(String(user + 1).utf8), Array(#"{"user_id": \#(user), "amount": 1, "status": "paid", "event_timestamp": \#(time)}"#.utf8), .keyMismatch)
        case 9: return ([], Array(#"{"user_id": \#(user), "amount": 1, "status": "paid", "event_timestamp": \#(time)}"#.utf8), .nullKey)
        default: return (key, Array(#"{"user_id": \#(user), "amount": 1, "status": "paid", "event_timestamp": \#(time - 3_600_000)}"#.utf8), .late)
        }
    }

    @Test("a topic salted with every kind of malformed event: good events aggregated, each bad one dead-lettered with its reason")
    func salted() throws {
        let topology = try growth()
        let view = topology.views[0]
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 2)
        let workload = ReferenceWorkload(.init(events: 4_000, users: 50, skew: 1.1, span: Time.day, disorder: 0))
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        var expectedCounts: [Int64: Int64] = [:]
        var expectedReasons: [String: Int] = [:]
        var reasonOfPayload: [Data: String] = [:]
        var json: [UInt8] = []
        for i in 0..<4_000 {
            let o = workload.order(i)
            json.removeAll(keepingCapacity: true)
            ReferenceWorkload.json(o, into: &json)
            let key = Array(String(o.userID).utf8)
            try producer.send(topic: "orders", key: key, value: json)
            expectedCounts[o.userID, default: 0] += 1
            if i % 25 == 24 {
                // A bad event, most on the same key (so the same partition, after some good ones).
                let (badKey, payload, reason) = Self.salt(i / 25, time: o.eventTimeMillis, key: key, user: o.userID)
                try producer.send(topic: "orders", key: badKey, value: payload)
                expectedReasons[reason.rawValue, default: 0] += 1
                reasonOfPayload[Data(payload)] = reason.rawValue
            }
        }
        try producer.flush()
        let redis = try RedisServer()
        let offline = temporaryDirectory("dead")
        var options = try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)
        options.maxMessageBytes = 4_096
        options.deadLetters = .file(offline + "/dead.jsonl")
        let stats = try RunningWorker(options).join()
        let bad = expectedReasons.values.reduce(0, +)
        #expect(stats.events == 4_000 + bad)
        #expect(stats.deadLettered == bad)
        #expect(stats.deadLetterReasons == expectedReasons)

        // Every bad event is in the dead-letter file with its reason, origin and exact bytes.
        let lines = try String(contentsOfFile: offline + "/dead.jsonl", encoding: .utf8).split(separator: "\n")
        var reasons: [String: Int] = [:]
        for line in lines {
            let record = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            reasons[record["reason"] as! String, default: 0] += 1
            #expect(record["topic"] as? String == "orders" && record["offset"] is NSNumber && record["partition"] is NSNumber)
            let payload = Data(base64Encoded: record["payload_base64"] as! String)!
            #expect(reasonOfPayload[payload] == record["reason"] as? String, "\(record["detail"] ?? "")")
        }
        #expect(reasons == expectedReasons)
        // Every reason a JSON source can give (the schema registry's are tests/system/test_formats.py's).
        let registryReasons: Set<DeadLetterReason> = [.undecodable, .schemaUnavailable, .schemaMismatch]
        #expect(Set(reasons.keys) == Set(DeadLetterReason.allCases.filter { !registryReasons.contains($0) }.map(\.rawValue)))

        // Every good event counted: the lifetime order count of every user is exact.
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        for (user, count) in expectedCounts {
            let row = try OnlineRow.fetch(view: view, key: [.int(user)], layout: OnlineLayout(), connection: connection)
            #expect(row.fields["total_orders"] == .int(count), "user \(user)")
        }
    }

    /// Partition 0 carries only garbage (`garbage` records), partition 1 300 good events.
    static func brokenPartition(_ cluster: MockKafkaCluster) throws {
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        for i in 0..<garbage {
            try producer.send(topic: "orders", partition: 0, key: [], value: Array("garbage \(i)".utf8))
        }
        for i in 0..<300 {
            try producer.send(topic: "orders", partition: 1, key: Array("7".utf8),
                              value: Array(#"{"user_id": 7, "amount": 1, "status": "paid", "event_timestamp": \#(1_700_000_000_000 + i)}"#.utf8))
        }
        try producer.flush()
    }

    /// Garbage records: many batches past the threshold, because a pause takes effect
    /// asynchronously (librdkafka's broker thread), and records polled before it still come.
    static let garbage = 3_000

    @Test("a partition yielding only bad events: keep going (default), pause it, or stop the worker", arguments: BadPartitionPolicy.allCases)
    func badPartition(policy: BadPartitionPolicy) throws {
        let topology = try growth()
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 2)
        try Self.brokenPartition(cluster)
        let redis = try RedisServer()
        let offline = temporaryDirectory("bad-partition")
        var options = try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)
        options.badPartitionPolicy = policy
        options.badPartitionThreshold = 100
        options.batchSize = 50  // the policy acts between batches
        let outcome = Result { try RunningWorker(options).join() }
        switch policy {
        case .keepGoing:
            let stats = try outcome.get()
            #expect(stats.events == Self.garbage + 300 && stats.aggregated == 300 && stats.deadLetterReasons == ["not_json": Self.garbage])
            #expect(stats.paused.isEmpty)
        case .pause:
            // The good partition is read to its end; the bad one stops after about the threshold.
            let stats = try outcome.get()
            #expect(stats.aggregated == 300)
            #expect(stats.paused == [TopicPartition("orders", 0)])
            #expect(stats.deadLettered >= 100 && stats.deadLettered < Self.garbage)
        case .stop:
            #expect(throws: EngineError.self) { try outcome.get() }
            if case .failure(let e) = outcome { #expect("\(e)".contains("orders[0] yielded")) }
        }
        // Whatever the policy, every rejected event read so far is in the dead letters.
        let lines = (try? String(contentsOfFile: offline + "/_dead_letters.jsonl", encoding: .utf8))?.split(separator: "\n") ?? []
        if policy != .stop { #expect(lines.count == (try outcome.get()).deadLettered) }
    }

    @Test("mis-keyed events: dead-lettered by default, aggregated and counted under key_mismatch: accept",
          arguments: KeyMismatchPolicy.allCases)
    func misKeyed(policy: KeyMismatchPolicy) throws {
        var topology = try growth()
        topology.sources[0].keyMismatch = policy
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 2)
        let producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: quiet)
        for i in 0..<200 {
            let user = i % 10
            // Every tenth event is keyed by another user (a producer keying by something else).
            let key = i % 10 == 9 ? (i % 20 == 9 ? [] : Array(String(user + 1).utf8)) : Array(String(user).utf8)
            try producer.send(topic: "orders", key: key,
                              value: Array(#"{"user_id": \#(user), "amount": 1, "status": "paid", "event_timestamp": \#(1_767_225_600_000 + i)}"#.utf8))
        }
        try producer.flush()
        let redis = try RedisServer()
        let offline = temporaryDirectory("mis-keyed")
        let options = try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: true)
        let stats = try RunningWorker(options).join()
        #expect(stats.events == 200 && stats.misKeyed == 20)
        if policy == .deadLetter {
            #expect(stats.aggregated == 180 && stats.deadLetterReasons == ["key_mismatch": 10, "null_key": 10])
        } else {
            #expect(stats.aggregated == 200 && stats.deadLettered == 0)
        }
    }
}
