import Foundation
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraLog
import TesseraOffline
import TesseraRedis
import TesseraSource
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload
import Testing

@Suite("Backfill computes what the stream computes", .serialized)
struct BackfillTests {
    /// Every offline row of a view per partition directory, created_timestamp left out (the wall
    /// clock of the write), as a sorted list of printable rows.
    func offlineRows(_ directory: String, view: FeatureView) throws -> [String: [String]] {
        var out: [String: [String]] = [:]
        for file in OfflineLog.files(directory: directory, view: view.name) {
            let partition = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
            let reader = try ParquetFileReader(path: file)
            let created = reader.schema.fields.firstIndex { $0.name == "created_timestamp" }!
            let columns = try reader.readAll()
            for i in 0..<(columns.first?.count ?? 0) {
                let row = columns.indices.filter { $0 != created }.map { String(describing: columns[$0].value(at: i)) }
                out[partition, default: []].append(row.joined(separator: "|"))
            }
        }
        for k in out.keys { out[k]!.sort() }
        return out
    }

    /// Every online hash under `prefix`, without `_created_ts`.
    func onlineRows(_ redis: RedisServer, prefix: String) throws -> [String: [String: String]] {
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        var rows: [String: [String: String]] = [:]
        guard case .array(let keys) = try connection.command(["KEYS", prefix + "*"]) else { return rows }
        for key in keys.compactMap(\.text) {
            guard case .array(let fields) = try connection.command(["HGETALL", key]) else { continue }
            var hash: [String: String] = [:]
            for i in stride(from: 0, to: fields.count, by: 2) where fields[i].text != "_created_ts" {
                hash[fields[i].text!] = fields[i + 1].text
            }
            rows[String(key.dropFirst(prefix.count))] = hash
        }
        return rows
    }

    @Test("the reference workload: backfill from JSON lines and from Parquet equals a worker run to the end, offline and online")
    func equalsStreaming() throws {
        let topology = try growth()
        let view = topology.views[0]
        // Disorder beyond the allowed lateness, so some events are late in both.
        let workload = ReferenceWorkload(.init(events: 30_000, users: 2_000, skew: 1.1, span: 6 * Time.hour, disorder: 20 * Time.second))
        let cluster = try MockKafkaCluster(brokers: 1, logger: quiet)
        try cluster.createTopic("orders", partitions: 4)
        try produceOrders(workload, 0..<30_000, to: "orders", brokers: cluster.bootstrapServers)
        let redis = try RedisServer()

        let streamed = temporaryDirectory("backfill-stream")
        var options = try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: streamed, untilEnd: true)
        options.keyPrefix = "stream:"
        let stream = try RunningWorker(options).join()
        #expect(stream.events == 30_000)
        #expect(stream.late > 0)

        // The same events as JSON lines, and as Parquet with a timestamp column.
        let files = temporaryDirectory("backfill-events")
        var lines: [UInt8] = []
        var columns = [Column(type: .int64), Column(type: .int64), Column(type: .int64), Column(type: .float64), Column(type: .string), Column(type: .int64)]
        for i in 0..<30_000 {
            let o = workload.order(i)
            ReferenceWorkload.json(o, into: &lines)
            lines.append(UInt8(ascii: "\n"))
            columns[0].append(int: o.orderID)
            columns[1].append(int: o.userID)
            columns[2].append(int: o.productID)
            columns[3].append(double: o.amount)
            columns[4].append(string: o.status.rawValue)
            columns[5].append(int: o.eventTimeMillis * 1_000)
        }
        _ = FileManager.default.createFile(atPath: files + "/orders.jsonl", contents: Data(lines))
        let schema = ParquetSchema([.init(name: "order_id", type: .int64), .init(name: "user_id", type: .int64),
                                    .init(name: "product_id", type: .int64), .init(name: "amount", type: .double),
                                    .init(name: "status", type: .string), .init(name: "event_timestamp", type: .timestampMicros)])
        let writer = try ParquetFileWriter(path: files + "/orders.parquet", schema: schema)
        for start in stride(from: 0, to: 30_000, by: 7_000) {
            try writer.write(rowGroup: columns.map { $0.sliced(start..<min(30_000, start + 7_000)) })
        }
        try writer.close()

        let expected = try offlineRows(streamed, view: view)
        #expect(expected.count == 4)
        let online = try onlineRows(redis, prefix: "stream:")
        #expect(online.count > 1_000)
        for (name, prefix) in [("orders.jsonl", "jsonl:"), ("orders.parquet", "parquet:")] {
            let out = temporaryDirectory("backfill-out")
            var backfill = BackfillOptions(topologies: [topology], events: [files + "/" + name], offlineDirectory: out, partitions: 4)
            backfill.redis = try RedisEndpoint(url: redis.url, environment: [:])
            backfill.keyPrefix = prefix
            backfill.rollEvents = 9_000  // several files per partition
            let stats = try Backfill(options: backfill, logger: quiet).run()
            #expect(stats.events == 30_000, "\(name)")
            #expect(stats.late == stream.late, "\(name)")
            #expect(stats.aggregated == stream.aggregated, "\(name)")
            #expect(stats.offlineRows == stream.offlineRows, "\(name)")
            let actual = try offlineRows(out, view: view)
            #expect(actual.keys.sorted() == expected.keys.sorted(), "\(name)")
            for (partition, rows) in expected {
                let mine = actual[partition] ?? []
                #expect(mine == rows, "\(name) \(partition): \(mine.count) rows, the stream \(rows.count); first difference \(String(describing: zip(mine, rows).first { $0 != $1 }))")
            }
            #expect(try onlineRows(redis, prefix: prefix) == online, "\(name)")
            // The late events are dead-lettered with the file and line (or row) they came from.
            let dead = try String(contentsOfFile: out + "/_dead_letters.jsonl", encoding: .utf8).split(separator: "\n")
            #expect(dead.count == stream.late)
            #expect(dead.allSatisfy { $0.contains("\"topic\":\"\(files)/\(name)\"") && $0.contains("\"reason\":\"late\"") })
        }
    }

    @Test("bad lines are dead-lettered with their line and reason; blank lines are skipped; nothing else is lost")
    func badInput() throws {
        let topology = try growth()
        let dir = temporaryDirectory("backfill-bad")
        let oversized = "{\"user_id\":1,\"event_timestamp\":1000,\"status\":\"" + String(repeating: "x", count: 3_000) + "\"}"
        let lines = [
            "{\"order_id\":1,\"user_id\":7,\"amount\":2.5,\"status\":\"paid\",\"event_timestamp\":1767225600000}",
            "",
            "not json",
            "{\"order_id\":2,\"user_id\":null,\"amount\":1,\"event_timestamp\":1767225601000}",
            "   ",
            oversized,
            "{\"order_id\":3,\"user_id\":7,\"amount\":\"many\",\"event_timestamp\":1767225602000}",
            "{\"order_id\":4,\"user_id\":8,\"amount\":4,\"status\":\"paid\",\"event_timestamp\":1767225603000}\r",
            "{\"order_id\":5,\"user_id\":7,\"amount\":1,\"status\":\"paid\",\"event_timestamp\":1767225500000}",
            "{\"order_id\":6,\"user_id\":9,\"amount\":1,\"status\":\"paid\",\"event_timestamp\":1767225604000}",
        ]
        _ = FileManager.default.createFile(atPath: dir + "/events.jsonl", contents: Data(lines.joined(separator: "\n").utf8))
        var options = BackfillOptions(topologies: [topology], events: [dir + "/events.jsonl"], offlineDirectory: dir + "/offline", partitions: 1)
        options.maxMessageBytes = 1_000
        let stats = try Backfill(options: options, logger: quiet).run()
        #expect(stats.events == 8)
        #expect(stats.deadLettered == [.notJSON: 1, .missingKey: 1, .oversized: 1, .wrongType: 1, .late: 1])
        #expect(stats.aggregated == 3)
        let dead = try String(contentsOfFile: dir + "/offline/_dead_letters.jsonl", encoding: .utf8).split(separator: "\n")
        let reasons = dead.map { line -> String in
            let object = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return "\(object["offset"]!):\(object["reason"]!)"
        }
        #expect(reasons == ["3:not_json", "4:missing_key", "6:oversized", "7:wrong_type", "9:late"])
        let users = try readOffline(dir + "/offline", view: topology.views[0]).keys.map { $0[0] }
        #expect(Set(users) == [.int(7), .int(8), .int(9)])

        // A second backfill into the same log is refused, and changes nothing.
        let again = BackfillOptions(topologies: [topology], events: [dir + "/events.jsonl"], offlineDirectory: dir + "/offline", partitions: 1)
        #expect(throws: EngineError.self) { try Backfill(options: again, logger: quiet) }
    }
}
