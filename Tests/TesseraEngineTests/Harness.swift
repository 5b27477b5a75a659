import Foundation
import Logging
import Synchronization
import Testing
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraLog
import TesseraOffline
import TesseraOnline
import TesseraRedis
import TesseraSource
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Silent unless TESSERA_TEST_LOG is set (then the workers' logs go to stderr).
let quiet: Logger = {
    var l = Logger(label: "test")
    l.logLevel = ProcessInfo.processInfo.environment["TESSERA_TEST_LOG"] != nil ? .info : .critical
    return l
}()

func growth(layout: OnlineFormat = .tessera) throws -> Topology {
    let path = packageRoot.appendingPathComponent("topologies/growth.yaml").path
    guard case .feast(let project) = layout else { return try TopologyLoader.load(files: [path])[0] }
    let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "\nowner:", with: "\nonline: {layout: feast, project: \(project)}\nowner:")
    return try TopologyLoader.parse(yaml: text, file: path).get()
}

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "tessera-\(name)-\(UUID().uuidString)"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Produces reference orders `range` (key = user_id).
func produceOrders(_ workload: ReferenceWorkload, _ range: Range<Int>, to topic: String, brokers: String) throws {
    let producer = try KafkaProducer(brokers: brokers, logger: quiet)
    var json: [UInt8] = []
    for i in range {
        let o = workload.order(i)
        json.removeAll(keepingCapacity: true)
        ReferenceWorkload.json(o, into: &json)
        try producer.send(topic: topic, key: Array(String(o.userID).utf8), value: json)
    }
    try producer.flush()
}

/// A worker as `tessera run` runs it: `WorkerService`, started at once, stopped or joined.
final class RunningWorker: Sendable {
    private let service: WorkerService?
    private let failure: (any Error)?

    init(_ options: WorkerOptions) {
        var configured = options
        configured.statsInterval = nil
        do {
            service = try WorkerService(options: configured, logger: quiet)
            failure = nil
        } catch {
            service = nil
            failure = error
        }
        service?.start()
    }

    var stats: WorkerStats { service?.progress ?? WorkerStats() }

    /// Waits until `condition` holds (or the worker ends); false on timeout.
    @discardableResult
    func wait(seconds: Double = 60, until condition: (WorkerStats) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(stats) { return true }
            if service?.outcome != nil || service == nil { return condition(stats) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    func stop() throws -> WorkerStats {
        service?.stop()
        return try join()
    }

    func join(seconds: Double = 120) throws -> WorkerStats {
        guard let service else { throw failure! }
        return try service.join(timeout: .milliseconds(Int64(seconds * 1_000)))
    }
}

/// Options for a worker against a test broker and Redis, with time-based behaviour switched off
/// (no idle advancement) so runs are deterministic.
func workerOptions(_ topology: Topology, brokers: String, redis: RedisServer, offline: String, untilEnd: Bool) throws -> WorkerOptions {
    var o = WorkerOptions(topologies: [topology], brokers: brokers,
                          redis: try RedisEndpoint(url: redis.url, environment: [:]), offlineDirectory: offline)
    o.stateDirectory = offline + "/_state"
    o.untilEnd = untilEnd
    o.idleTimeout = nil
    o.rollInterval = .milliseconds(500)
    // Small row groups: files are built piece by piece on the storage thread, as in production.
    o.offlineRowGroupRows = 300
    o.checkpointInterval = .seconds(1)
    o.kafkaProperties = [("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")]
    return o
}

/// Every offline row of a view: per entity, (event time, created time, features), sorted as the
/// point-in-time join orders them.
func readOffline(_ directory: String, view: FeatureView) throws -> [[Value]: [(time: Micros, created: Micros, features: [Value?])]] {
    var rows: [[Value]: [(time: Micros, created: Micros, features: [Value?])]] = [:]
    let keys = view.joinKeys.count, features = view.spec.features.count
    for file in OfflineLog.files(directory: directory, view: view.name) {
        let columns = try ParquetFileReader(path: file).readAll()
        for i in 0..<(columns.first?.count ?? 0) {
            let key = (0..<keys).map { columns[$0].value(at: i)! }
            let values = (0..<features).map { columns[keys + $0].value(at: i) }
            guard case .int(let t) = columns[keys + features].value(at: i)!, case .int(let c) = columns[keys + features + 1].value(at: i)! else { continue }
            rows[key, default: []].append((t, c, values))
        }
    }
    for k in rows.keys { rows[k]!.sort { ($0.time, $0.created) < ($1.time, $1.created) } }
    return rows
}

/// The oracle of each partition, fed with the topic's records in offset order.
func oracles(brokers: String, topic: String, source: Source, spec: ViewSpec) throws -> [Int32: Oracle] {
    let consumer = try KafkaConsumer(brokers: brokers, group: "oracle-\(UUID().uuidString)", topics: [topic],
                                     properties: [("session.timeout.ms", "6000")], reportEndOfPartition: true, logger: quiet)
    var decoder = JSONEventDecoder(source: source)
    var result: [Int32: Oracle] = [:]
    let deadline = Date().addingTimeInterval(60)
    while (consumer.assignment.isEmpty || !consumer.atEnd.isSuperset(of: consumer.assignment)) && Date() < deadline {
        try consumer.poll(timeout: 100) { records in
            for r in records {
                var batch = ColumnBatch(schema: source.schema.types)
                guard decoder.decode(r.payload, into: &batch) == nil else { continue }
                result[r.partition, default: Oracle(spec: spec, lateness: source.allowedLateness)]
                    .add(time: batch.eventTimes[0], values: batch.columns.map { $0.value(at: 0) })
            }
        }
    }
    consumer.close()
    return result
}

/// Invariants 1 and 2 (offline as-of values equal the oracle at every emission time and at
/// random times up to the partition's stream time) and 3 (the online row equals the last
/// offline row). Returns the number of entities checked.
@discardableResult
func checkInvariants(view: FeatureView, oracles: [Int32: Oracle], offline: String, redis: RedisServer, samples: Int = 40) throws -> Int {
    let rows = try readOffline(offline, view: view)
    let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
    var g = SeededGenerator(seed: 99)
    var checked = 0
    for (_, oracle) in oracles.sorted(by: { $0.key < $1.key }) {
        // The busiest entities (most events, most boundaries crossed) and a random sample of the rest.
        let keys = oracle.events.keys.sorted { (oracle.events[$0]!.count, "\($1)") > (oracle.events[$1]!.count, "\($0)") }
        let chosen = Array(keys.prefix(5)) + Array(keys.dropFirst(5)).shuffled(using: &g).prefix(samples)
        for key in chosen {
            guard let list = rows[key] else {
                Issue.record("\(key) has events but no offline row")
                continue
            }
            var queries = Set(list.shuffled(using: &g).prefix(40).flatMap { [$0.time, $0.time - 1] })
            queries.insert(list.last!.time)
            for _ in 0..<20 { queries.insert(Micros.random(in: (oracle.streamTime - 2 * Time.day)...oracle.streamTime, using: &g)) }
            for q in queries where q <= oracle.streamTime {
                let expected = oracle.row(key, at: q)
                let actual = list.last(where: { $0.time <= q })?.features ?? emptyRow(view.spec)
                for (i, f) in view.spec.features.enumerated() where !agree(actual[i], expected[i], aggregate: f.aggregate) {
                    Issue.record("\(key) at \(q): \(f.name) offline \(String(describing: actual[i])), oracle \(String(describing: expected[i]))")
                    return checked
                }
            }
            // Invariant 3: online = last offline row.
            let online = try OnlineRow.fetch(view: view, key: key, layout: OnlineLayout(), connection: connection)
            let last = list.last!
            #expect(online.eventTime == last.time && online.createdTime == last.created, "\(key)")
            for (i, f) in view.spec.features.enumerated() where online.fields[f.name] != last.features[i] {
                Issue.record("\(key): \(f.name) online \(String(describing: online.fields[f.name])) offline \(String(describing: last.features[i]))")
            }
            checked += 1
        }
    }
    return checked
}
