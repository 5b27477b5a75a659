import Foundation
import TesseraCore
import TesseraEngine
import TesseraKafka
import TesseraLog
import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload
import Testing

/// Faults of the worker's surroundings (docs/design.md, "Delivery and recovery"): Redis unreachable or hung, brokers down and
/// failing requests, an offline directory that cannot be written. The worker waits, retries,
/// reports it, resumes, and ends with the same outputs as a run that met no fault.
@Suite("Faults: Redis, brokers, the offline directory and checkpoints", .serialized)
struct FaultTests {
    static let events = 9_000
    static let workload = ReferenceWorkload(.init(events: events, users: 300, skew: 1.1, span: 2 * Time.day, disorder: 3 * Time.second))

    @Test("Redis hung for 4 s, then stopped for 10 s: the worker waits, reports, resumes; outputs equal an undisturbed run")
    func redisOutage() throws {
        let expected = try Self.undisturbed()
        let run = try DisturbedRun()
        try run.produce(0..<3_000)
        let worker = run.start()
        #expect(worker.wait { $0.events == 3_000 })

        // Hung: connections open but nothing answers (each write times out after 2 s).
        run.redis.pause()
        try run.produce(3_000..<6_000)
        #expect(worker.wait(seconds: 30) { $0.retrying == "Redis unreachable" }, "the stats never reported the hung Redis")
        Thread.sleep(forTimeInterval: 4)
        run.redis.resume()
        #expect(worker.wait { $0.events == 6_000 && $0.retrying == nil })

        // Stopped: connections refused for 10 s. The data survives (saved at shutdown).
        try run.redis.shutdownSaving()
        try run.produce(6_000..<9_000)
        #expect(worker.wait(seconds: 30) { $0.retrying == "Redis unreachable" })
        // The worker stops polling at its first failed write.
        Thread.sleep(forTimeInterval: 1)
        let stalled = worker.stats.events
        Thread.sleep(forTimeInterval: 9)
        #expect(worker.stats.events == stalled, "the worker kept consuming while Redis was down")
        #expect(worker.stats.retrying == "Redis unreachable")
        try run.redis.restart()
        #expect(worker.wait { $0.events == Self.events && $0.retrying == nil })
        #expect(try run.finish(worker) == expected)
    }

    @Test("stopped while Redis is down: past the shutdown timeout the worker exits with an error; the next run replays what was not written")
    func stopDuringOutage() throws {
        let expected = try Self.undisturbed()
        let run = try DisturbedRun()
        try run.produce(0..<3_000)
        var impatient = run.options
        impatient.shutdownTimeout = .seconds(1)
        let worker = RunningWorker(impatient)
        #expect(worker.wait { $0.events == 3_000 })
        try run.redis.shutdownSaving()
        try run.produce(3_000..<Self.events)
        #expect(worker.wait(seconds: 30) { $0.retrying == "Redis unreachable" })
        #expect {
            _ = try worker.stop()
        } throws: { error in
            "\(error)".contains("stopped while Redis was unreachable")
        }
        try run.redis.restart()
        var last = run.options
        last.untilEnd = true
        _ = try RunningWorker(last).join()
        #expect(try Outputs(offline: run.offline, redis: run.redis, view: run.topology.views[0]) == expected)
    }

    @Test("Redis restarted empty, while the worker runs and while none does: every entity's row comes back from the state, quiet ones included; outputs equal an undisturbed run",
          arguments: [OnlineFormat.tessera, .feast(project: "shop")])
    func redisLostItsData(layout: OnlineFormat) throws {
        let expected = try Self.undisturbed(layout: layout)
        let run = try DisturbedRun(layout: layout)
        try run.produce(0..<4_000)
        let worker = run.start()
        #expect(worker.wait { $0.events == 4_000 })
        let online = { try Outputs(offline: run.offline, redis: run.redis, view: run.topology.views[0]).online }
        let before = try Self.settled(online)
        #expect(before.count > 200)
        try run.redis.restartEmpty()
        #expect(worker.wait(seconds: 30) { $0.onlineRowsRewritten >= before.count }, "the rows Redis lost were not rewritten")
        // No event arrived since the loss: the rows came back from the state alone.
        #expect(try Self.settled(online) == before)
        try run.produce(4_000..<6_000)
        #expect(worker.wait { $0.events == 6_000 })
        _ = try worker.stop()
        // Lost while no worker runs: the next one finds the sentinels gone and rewrites the rows.
        try run.redis.restartEmpty()
        try run.produce(6_000..<Self.events)
        #expect(try run.finish(run.start()) == expected)
    }

    /// What `read` returns once two reads half a second apart agree (within 20 s).
    static func settled(_ read: () throws -> [String]) throws -> [String] {
        var last = try read()
        for _ in 0..<40 {
            Thread.sleep(forTimeInterval: 0.5)
            let now = try read()
            if now == last { return now }
            last = now
        }
        return last
    }

    @Test("rows changed in Redis behind the worker's back are found by its sample after a checkpoint; an undisturbed run finds none")
    func sampleFindsCorruptRows() throws {
        let run = try DisturbedRun()
        try run.produce(0..<3_000)
        let worker = run.start()
        #expect(worker.wait { $0.events == 3_000 })
        #expect(worker.wait(seconds: 10) { $0.commits >= 1 })
        #expect(worker.stats.onlineMismatches == 0)
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: run.redis.url, environment: [:]), logger: quiet)
        guard case .array(let keys) = try connection.command(["KEYS", "tessera:user_stats:*"]) else { throw EngineError(.stopped, "KEYS failed") }
        #expect(keys.count > 200)
        for key in keys.compactMap(\.text) { _ = try connection.command(["HSET", key, "total_orders", "-1"]) }
        #expect(worker.wait(seconds: 30) { $0.onlineMismatches > 0 }, "the sample did not notice rows it had not written")
        _ = try worker.stop()
    }

    @Test("tessera verify: no mismatch after a drained run; exactly the entities whose Redis rows were changed, deleted or rolled back")
    func verifyFindsExactlyTheCorruptRows() throws {
        let run = try DisturbedRun()
        try run.produce(0..<Self.events)
        var options = run.options
        options.untilEnd = true
        _ = try RunningWorker(options).join()
        let view = run.topology.views[0]
        var verify = Verification.Options(topologies: [run.topology], offlineDirectory: run.offline, stateDirectory: run.offline + "/_state",
                                          group: options.group, redis: options.redis)
        verify.sample = 1_000_000
        let clean = try Verification(verify).run(now: SystemClock().now())
        #expect(clean.sampled == clean.entities && clean.entities > 250)
        #expect(clean.mismatches.isEmpty, "\(clean.mismatches.prefix(3).map { "\($0.redisKey) \($0.check)" })")
        #expect(clean.counts[view.name]?["state"]?[.equal] == clean.sampled && clean.counts[view.name]?["offline"]?[.equal] == clean.sampled)

        let connection = RedisConnection(endpoint: options.redis, logger: quiet)
        guard case .array(let keys) = try connection.command(["KEYS", "tessera:user_stats:*"]) else { throw EngineError(.stopped, "KEYS failed") }
        let victims = keys.compactMap(\.text).sorted().prefix(3)
        let changed = victims[victims.startIndex], deleted = victims[victims.startIndex + 1], rolledBack = victims[victims.startIndex + 2]
        _ = try connection.command(["HSET", changed, "total_orders", "-1"])
        _ = try connection.command(["DEL", deleted])
        _ = try connection.command(["HINCRBY", rolledBack, "_created_ts", "-1"])
        let dirty = try Verification(verify).run(now: SystemClock().now())
        let found = Dictionary(grouping: dirty.mismatches, by: \.redisKey).mapValues { Set($0.map { "\($0.against) \($0.check.rawValue)" }) }
        #expect(found == [changed: ["state differs", "offline differs"], deleted: ["state missing", "offline missing"],
                          rolledBack: ["state older", "offline older"]])
        // A sample of 50 sees only sampled entities, the same ones for the same seed.
        verify.sample = 50
        verify.seed = 9
        let a = try Verification(verify).run(now: SystemClock().now()), b = try Verification(verify).run(now: SystemClock().now())
        #expect(a.sampled == 50 && a.mismatches.map(\.redisKey) == b.mismatches.map(\.redisKey))
    }

    @Test("Redis down: the worker stops polling at its first failed write, not at its next checkpoint")
    func stopsPollingAtTheFirstFailedWrite() throws {
        let expected = try Self.undisturbed()
        let run = try DisturbedRun()
        var options = run.options
        options.checkpointInterval = .seconds(3_600)
        options.rollInterval = .seconds(3_600)
        try run.produce(0..<3_000)
        let worker = RunningWorker(options)
        #expect(worker.wait { $0.events == 3_000 })
        try run.redis.shutdownSaving()
        try run.produce(3_000..<6_000)
        #expect(worker.wait(seconds: 30) { $0.retrying == "Redis unreachable" })
        let stalled = worker.stats.events
        try run.produce(6_000..<Self.events)
        Thread.sleep(forTimeInterval: 3)
        #expect(worker.stats.events == stalled, "the worker kept consuming while Redis was down")
        try run.redis.restart()
        #expect(worker.wait { $0.events == Self.events && $0.retrying == nil })
        #expect(try run.finish(worker) == expected)
    }

    @Test("a broker down for 3 s and injected fetch, commit and heartbeat errors: outputs equal an undisturbed run")
    func brokerFaults() throws {
        let expected = try Self.undisturbed()
        let run = try DisturbedRun(brokers: 3)
        try run.produce(0..<3_000)
        let worker = run.start()
        #expect(worker.wait { $0.events == 3_000 })

        // Every broker but one goes down: the partitions they lead (and perhaps the group
        // coordinator) are unreachable until they return.
        run.cluster.setBroker(2, up: false)
        run.cluster.setBroker(3, up: false)
        Thread.sleep(forTimeInterval: 3)
        run.cluster.setBroker(2, up: true)
        run.cluster.setBroker(3, up: true)
        try run.produce(3_000..<6_000)
        #expect(worker.wait { $0.events == 6_000 })

        // Transient request errors: Fetch (1), OffsetCommit (8) and Heartbeat (12).
        run.cluster.injectErrors(apiKey: 1, codes: [6, 7, 6, 7, 6])        // NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT
        run.cluster.injectErrors(apiKey: 8, codes: [15, 16, 7, 15])       // COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, …
        run.cluster.injectErrors(apiKey: 12, codes: [15, 7])
        try run.produce(6_000..<9_000)
        #expect(worker.wait { $0.events == Self.events })
        Thread.sleep(forTimeInterval: 2)  // a few checkpoints and commits go through the injected errors
        #expect(try run.finish(worker) == expected)
    }

    @Test("the offline directory unwritable for a while: the worker stops consuming, reports, resumes; outputs equal an undisturbed run")
    func offlineUnwritable() throws {
        // Every new offline file fails to be created.
        try Self.runWithDirectoryAway({ $0.offline + "/user_stats" }, once: { $0.offlineRows > 0 }, reported: "cannot write the offline log")
    }

    @Test("the checkpoints' directory unwritable for a while: the worker stops consuming, reports, writes the checkpoint it could not, resumes; outputs equal an undisturbed run")
    func checkpointsUnwritable() throws {
        // Every checkpoint fails to be written, first on the snapshot thread (which keeps the
        // state's copy), then on the storage thread's retries.
        let directory = try Self.runWithDirectoryAway({ run in
            CheckpointStore(stateDirectory: run.options.stateDirectory!, group: run.options.group).directory + "/orders"
        }, once: { $0.commits > 0 }, reported: "cannot write the checkpoint of orders")
        // No temporary file is left behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".tmp") }
        #expect(left.isEmpty, "\(left)")
    }

    /// Runs the workload with a directory the worker writes (`directory`, once the first third is
    /// consumed and `ready`) turned into a plain file while the second third is produced: the
    /// worker must report `reported` (a prefix of what it retries) and stop consuming; with the
    /// directory back it resumes, and the outputs equal an undisturbed run. Returns the directory.
    /// (Tests run as root, for whom permissions do not fail a write.)
    @discardableResult
    static func runWithDirectoryAway(_ directory: (DisturbedRun) -> String, once ready: (WorkerStats) -> Bool, reported: String) throws -> String {
        let expected = try undisturbed()
        let run = try DisturbedRun()
        try run.produce(0..<3_000)
        let worker = run.start()
        #expect(worker.wait { $0.events == 3_000 && ready($0) })
        let path = directory(run)
        #expect(FileManager.default.fileExists(atPath: path))
        try FileManager.default.moveItem(atPath: path, toPath: path + ".away")
        #expect(FileManager.default.createFile(atPath: path, contents: Data("not a directory".utf8)))
        try run.produce(3_000..<6_000)
        #expect(worker.wait(seconds: 30) { $0.retrying?.hasPrefix(reported) == true }, "the stats never reported '\(reported)'")
        Thread.sleep(forTimeInterval: 0.5)
        let stalled = worker.stats.events
        Thread.sleep(forTimeInterval: 2)
        #expect(worker.stats.events == stalled, "the worker kept consuming while it could not write \(path)")
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: path + ".away", toPath: path)
        try run.produce(6_000..<9_000)
        #expect(worker.wait { $0.events == events && $0.retrying == nil })
        #expect(try run.finish(worker) == expected)
        return path
    }

    /// The outputs of one uninterrupted drained run over the whole workload.
    static func undisturbed(layout: OnlineFormat = .tessera) throws -> Outputs {
        let run = try DisturbedRun(layout: layout)
        try run.produce(0..<events)
        var options = run.options
        options.untilEnd = true
        let stats = try RunningWorker(options).join()
        #expect(stats.onlineMismatches == 0)
        let outputs = try Outputs(offline: run.offline, redis: run.redis, view: run.topology.views[0])
        #expect(outputs.offline.count > events && outputs.online.count > 250, "\(outputs)")
        return outputs
    }
}

/// A mock cluster, a Redis and an offline directory for one run of the reference view.
struct DisturbedRun {
    let topology: Topology
    let cluster: MockKafkaCluster
    let redis: RedisServer
    let offline: String
    let options: WorkerOptions

    init(brokers: Int = 1, layout: OnlineFormat = .tessera) throws {
        topology = try growth(layout: layout)
        cluster = try MockKafkaCluster(brokers: brokers, logger: quiet)
        try cluster.createTopic("orders", partitions: 4)
        redis = try RedisServer()
        offline = temporaryDirectory("faults")
        options = try workerOptions(topology, brokers: cluster.bootstrapServers, redis: redis, offline: offline, untilEnd: false)
    }

    func produce(_ range: Range<Int>) throws {
        try produceOrders(FaultTests.workload, range, to: "orders", brokers: cluster.bootstrapServers)
    }

    func start() -> RunningWorker { RunningWorker(options) }

    /// Stops the worker, then drains with a last `--until-end` run (which closes the rows still
    /// open, as the undisturbed run does at its end), and returns the outputs.
    func finish(_ worker: RunningWorker) throws -> Outputs {
        _ = try worker.stop()
        var last = options
        last.untilEnd = true
        _ = try RunningWorker(last).join()
        return try Outputs(offline: offline, redis: redis, view: topology.views[0])
    }
}

/// What a run leaves behind, comparable across runs: every offline row (a multiset, without
/// `created_timestamp`, the wall clock of the write) and every Redis row (without `_created_ts`).
struct Outputs: Equatable, CustomStringConvertible {
    var offline: [String]
    var online: [String]

    init(offline directory: String, redis: RedisServer, view: FeatureView) throws {
        var rows: [String] = []
        for (key, list) in try readOffline(directory, view: view) {
            for r in list { rows.append("\(key) \(r.time) \(r.features)") }
        }
        offline = rows.sorted()
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        var online: [String] = []
        guard case .array(let keys) = try connection.command(["KEYS", "*"]) else { throw EngineError(.stopped, "KEYS failed") }
        // Keys, fields and values as text, or in hex where they are bytes (Feast's layout); the
        // created timestamps (the wall clock of the write) left out.
        func show(_ reply: RedisReply) -> String {
            guard case .string(let bytes) = reply else { return "?" }
            if let text = String(validating: bytes, as: UTF8.self), text.unicodeScalars.allSatisfy({ $0.value >= 0x20 }) { return text }
            return "0x" + bytes.map { String(format: "%02x", $0) }.joined()
        }
        for key in keys {
            var resp = RESPBuffer()
            guard case .string(let bytes) = key else { continue }
            resp.begin(arguments: 2)
            resp.argument(Array("HGETALL".utf8))
            resp.argument(bytes)
            guard case .array(let items) = try connection.send(resp)[0] else { continue }
            var fields: [String] = []
            for i in stride(from: 0, to: items.count - 1, by: 2) where !(items[i].text ?? "").hasPrefix(OnlineLayout.createdTimeField) {
                fields.append("\(show(items[i]))=\(show(items[i + 1]))")
            }
            online.append(show(key) + " " + fields.sorted().joined(separator: " "))
        }
        self.online = online.sorted()
    }

    var description: String { "\(offline.count) offline rows, \(online.count) online rows" }

    static func == (a: Outputs, b: Outputs) -> Bool {
        guard a.offline == b.offline, a.online == b.online else {
            let missing = Set(b.offline).subtracting(a.offline).prefix(3), extra = Set(a.offline).subtracting(b.offline).prefix(3)
            let online = Set(a.online).symmetricDifference(b.online).prefix(4)
            Issue.record("outputs differ: \(a) vs \(b); offline only in one: \(Array(missing)) / \(Array(extra)); online: \(Array(online))")
            return false
        }
        return true
    }
}
