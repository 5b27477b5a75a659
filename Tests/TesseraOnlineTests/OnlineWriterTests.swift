import Foundation
import Synchronization
import Testing
import TesseraCore
import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology

/// A wall clock the test moves.
final class SteppedClock: WallClock {
    private let time: Mutex<Micros>
    init(_ start: Micros) { time = Mutex(start) }
    func now() -> Micros { time.withLock { $0 } }
    func advance(by micros: Micros) { time.withLock { $0 += micros } }
}

/// The online writer's Redis commands, read back from a real redis-server: HDEL only when a
/// feature goes from present to null, the expiry refreshed at most once per 10 % of the TTL,
/// and a key Redis lost given its expiry again.
@Suite("The online writer's Redis commands", .serialized)
struct OnlineWriterTests {
    static let start: Micros = 1_767_225_600_000_000
    static let ttlMillis: Int64 = 86_400_000   // user_stats: 1 d

    struct Setup {
        let redis: RedisServer
        let connection: RedisConnection
        let writer: OnlineWriter
        let clock: SteppedClock
        let view: FeatureView
    }

    func setup() throws -> Setup {
        let redis = try RedisServer()
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        let view = try growth().views.first { $0.name == "user_stats" }!
        let clock = SteppedClock(Self.start)
        let writer = OnlineWriter(layout: OnlineLayout(), connection: RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet),
                                  views: [view], logger: quiet, clock: clock)
        return Setup(redis: redis, connection: connection, writer: writer, clock: clock, view: view)
    }

    /// Rows of user_stats: (entity id, user, whether total_orders_1h is null); the other
    /// features are present.
    func write(_ s: Setup, _ rows: [(entity: UInt32, user: Int64, nullFirst: Bool)], partition: Int32 = 0) throws {
        add(s, rows, partition: partition)
        try s.writer.flush()
    }

    /// Adds the rows of `write` without flushing them.
    func add(_ s: Setup, _ rows: [(entity: UInt32, user: Int64, nullFirst: Bool)], partition: Int32 = 0) {
        var batch = EmissionBatch(keyTypes: [.int64], featureTypes: s.view.spec.features.map { s.view.spec.outputType(of: $0) })
        for r in rows {
            batch.eventTimes.append(s.clock.now())
            batch.entityIds.append(r.entity)
            batch.closers.append(-1)
            batch.keys[0].append(int: r.user)
            for f in batch.features.indices {
                if f == 0 && r.nullFirst { batch.features[f].appendNull(); continue }
                switch batch.features[f].type {
                case .int64: batch.features[f].append(int: 7)
                case .float64: batch.features[f].append(double: 2.5)
                case .bool: batch.features[f].append(bool: true)
                case .string: batch.features[f].append(string: "paid")
                }
            }
        }
        s.writer.add(view: "user_stats", partition: partition, emissions: batch, created: rows.map { _ in s.clock.now() })
    }

    func calls(_ s: Setup) throws -> [String: Int] {
        guard case .string(let text) = try s.connection.command(["INFO", "commandstats"]) else { return [:] }
        var out: [String: Int] = [:]
        for line in String(decoding: text, as: UTF8.self).split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            let name = line.dropFirst("cmdstat_".count).prefix { $0 != ":" }
            let calls = line.split(separator: "calls=")[1].prefix { $0.isNumber }
            out[String(name)] = Int(calls)
        }
        return out
    }

    func fields(_ s: Setup, user: Int64) throws -> Set<String> {
        guard case .array(let items) = try s.connection.command(["HKEYS", "tessera:user_stats:\(user)"]) else { return [] }
        return Set(items.compactMap { if case .string(let b) = $0 { String(decoding: b, as: UTF8.self) } else { nil } })
    }

    func pttl(_ s: Setup, user: Int64) throws -> Int64 {
        guard case .integer(let t) = try s.connection.command(["PTTL", "tessera:user_stats:\(user)"]) else { return -3 }
        return t
    }

    @Test("HDEL only for a feature that goes from present to null; PEXPIRE once per 10 % of the TTL, to 1.1 × TTL")
    func cheapPath() throws {
        let s = try setup()
        let first = s.view.features[0].name
        // Nothing is known yet: every null feature is deleted, every key gets its expiry.
        try write(s, [(0, 1, false), (1, 2, true)])
        var c = try calls(s)
        #expect(c["hset"] == 2 && c["hdel"] == 1 && c["pexpire"] == 2)
        #expect(try fields(s, user: 2).contains(first) == false)
        for user: Int64 in [1, 2] {
            let t = try pttl(s, user: user)
            #expect(t > Self.ttlMillis && t <= Self.ttlMillis + Self.ttlMillis / 10)
        }
        // A second later: user 1's feature goes null (one HDEL), user 2's stays null (none); no expiry is due.
        s.clock.advance(by: 1_000_000)
        try write(s, [(0, 1, true), (1, 2, true)])
        c = try calls(s)
        #expect(c["hset"] == 4 && c["hdel"] == 2 && c["pexpire"] == 2)
        #expect(try fields(s, user: 1).contains(first) == false)
        // Null to present and back: the HDEL is needed again.
        try write(s, [(0, 1, false)])
        #expect(try fields(s, user: 1).contains(first))
        try write(s, [(0, 1, true)])
        c = try calls(s)
        #expect(c["hdel"] == 3 && c["pexpire"] == 2)
        // 10 % of the TTL after the expiry was set, it is set again.
        s.clock.advance(by: Self.ttlMillis / 10 * 1_000)
        try write(s, [(0, 1, true), (1, 2, true)])
        c = try calls(s)
        #expect(c["pexpire"] == 4 && c["hdel"] == 3)
    }

    @Test("HSET leaves out the numbers the key holds already; strings, times and changed values are written")
    func unchangedValuesLeftOut() throws {
        let s = try setup()
        let key = "tessera:user_stats:1"
        func value(_ field: String) throws -> String? {
            guard case .string(let b) = try s.connection.command(["HGET", key, field]) else { return nil }
            return String(decoding: b, as: UTF8.self)
        }
        try write(s, [(0, 1, false)])
        // Marks in every field: those the next write leaves out keep them.
        let names = s.view.features.map(\.name) + ["_event_ts", "_created_ts"]
        for name in names { _ = try s.connection.command(["HSET", key, name, "mark"]) }
        s.clock.advance(by: 1_000_000)
        try write(s, [(0, 1, false)])
        for (f, feature) in s.view.features.enumerated() {
            let type = s.view.spec.outputType(of: s.view.spec.features[f])
            let v = try value(feature.name)
            if type == .string { #expect(v == "paid", "\(feature.name) = \(v ?? "nil")") } else { #expect(v == "mark", "\(feature.name) was written again") }
        }
        #expect(try value("_event_ts") != "mark" && value("_created_ts") != "mark")
        // A value that changes is written; null and back is written again too.
        try write(s, [(0, 1, true)])
        #expect(try value(s.view.features[0].name) == nil)
        try write(s, [(0, 1, false)])
        #expect(try value(s.view.features[0].name) == "7")
        #expect(try value(s.view.features[1].name) == "mark")
        // A TTL after the key's expiry was last set it may have expired: the whole row is written.
        s.clock.advance(by: Self.ttlMillis * 1_000)
        try write(s, [(0, 1, false)])
        #expect(try value(s.view.features[1].name) == "7")
    }

    @Test("an entity's row is handed over at most once per interval; its latest row follows once the interval has passed; flush() writes every row")
    func oncePerInterval() throws {
        let s = try setup()
        let first = s.view.features[0].name
        func handOver() throws {
            try s.writer.flushIfIdle()
            for _ in 0..<1_000 where !s.writer.isFlusherIdle { Thread.sleep(forTimeInterval: 0.01) }
        }
        add(s, [(0, 1, false)])
        try handOver()
        #expect(try calls(s)["hset"] == 1)
        // 40 ms later user 1 changes again and user 2 appears: only user 2 is due.
        s.clock.advance(by: 40_000)
        add(s, [(0, 1, true), (1, 2, false)])
        try handOver()
        #expect(try calls(s)["hset"] == 2)
        #expect(try fields(s, user: 1).contains(first), "user 1's second row was written within the interval")
        #expect(s.writer.hasPendingRow(view: "user_stats", partition: 0, entity: 0))
        #expect(!s.writer.hasPendingRow(view: "user_stats", partition: 0, entity: 1))
        // Still within the interval: nothing is due, nothing is written.
        s.clock.advance(by: 59_000)
        try handOver()
        #expect(try calls(s)["hset"] == 2)
        // 100 ms after it was handed over, user 1's latest row is.
        s.clock.advance(by: 1_000)
        try handOver()
        #expect(try calls(s)["hset"] == 3)
        #expect(try fields(s, user: 1).contains(first) == false)
        #expect(!s.writer.hasPendingRow(view: "user_stats", partition: 0, entity: 0))
        // flush() (before a commit) writes every pending row, within the interval or not.
        add(s, [(0, 1, false), (1, 2, true)])
        try s.writer.flush()
        #expect(try calls(s)["hset"] == 5)
        #expect(try fields(s, user: 1).contains(first) && !(try fields(s, user: 2).contains(first)))
    }

    @Test("a key Redis lost is written whole and given its expiry; an entity id reused for another key counts as unknown")
    func lostAndReused() throws {
        let s = try setup()
        try write(s, [(0, 1, true)])
        _ = try s.connection.command(["FLUSHALL"])
        s.clock.advance(by: 1_000_000)
        try write(s, [(0, 1, true)])
        let t = try pttl(s, user: 1)
        #expect(t > Self.ttlMillis && t <= Self.ttlMillis + Self.ttlMillis / 10)
        #expect(try fields(s, user: 1).count == s.view.features.count - 1 + 2)
        // Entity 0 now stands for user 9: its key gets its expiry and its null feature deleted.
        let before = try calls(s)
        try write(s, [(0, 9, true)])
        let after = try calls(s)
        #expect(after["pexpire", default: 0] - before["pexpire", default: 0] == 1)
        #expect(after["hdel", default: 0] - before["hdel", default: 0] == 1)
        #expect(try pttl(s, user: 9) > Self.ttlMillis)
    }

    @Test("a hand-over of several pipelined chunks writes every row, and every key Redis lost in between is written whole and gets its expiry back")
    func severalChunks() throws {
        let s = try setup()
        let n = 5_500   // three chunks of the flusher's 2 000 rows
        let users = (0..<n).map { (entity: UInt32($0), user: Int64(10_000 + $0)) }
        try write(s, users.map { ($0.entity, $0.user, false) })
        _ = try s.connection.command(["FLUSHALL"])
        s.clock.advance(by: 1_000_000)
        let before = try calls(s)
        // Every key was lost (the writer does not know it); even entities' first feature goes null.
        // The other values are unchanged, so the first HSET leaves them out; its reply shows the
        // key was made again, and a second HSET writes the whole row.
        try write(s, users.map { ($0.entity, $0.user, $0.entity % 2 == 0) })
        let after = try calls(s)
        let c = after.mapValues { $0 }.merging(before) { $0 - $1 }
        #expect(c["hset"] == 2 * n && c["hdel"] == n / 2 && c["pexpire"] == n, "\(c)")
        let first = s.view.features[0].name
        for u in users {
            let f = try fields(s, user: u.user)
            #expect(f.count == s.view.features.count + 2 - (u.entity % 2 == 0 ? 1 : 0) && f.contains(first) == (u.entity % 2 == 1),
                    "user \(u.user): \(f.sorted())")
            let t = try pttl(s, user: u.user)
            #expect(t > Self.ttlMillis && t <= Self.ttlMillis + Self.ttlMillis / 10, "user \(u.user): PTTL \(t)")
        }
    }

    @Test("a mark is reached only once Redis holds every row added before it, rows still pending and a hand-over owed included")
    func markWaitsForTheRowsBeforeIt() throws {
        let s = try setup()
        try write(s, [(0, 100, false)])
        // Redis hung: the first rows are handed over and stay in flight.
        s.redis.pause()
        add(s, [(1, 101, false)])
        try s.writer.flushIfIdle()
        // Taken while the flusher is busy: the rows of 102 are still pending, so the mark is
        // owed the next hand-over.
        add(s, [(2, 102, false)])
        let mark = s.writer.mark()
        #expect(try !mark.reached(within: 0.5), "a mark was reached while Redis could not have written its rows")
        s.redis.resume()
        var reached = false
        for _ in 0..<300 where !reached {
            try s.writer.flushIfIdle()
            reached = try mark.reached(within: 0.1)
        }
        #expect(reached)
        for user: Int64 in [100, 101, 102] {
            #expect(try fields(s, user: user).contains("total_orders_1h"), "user \(user)'s row is not in Redis although the mark was reached")
        }
        // Nothing pending: the mark is the rows already handed over.
        #expect(try s.writer.mark().reached(within: 5))
    }

    @Test("after a partition changes hands, nothing is assumed of its keys")
    func forgottenOnHandover() throws {
        let s = try setup()
        try write(s, [(0, 1, true)], partition: 3)
        // Meanwhile another worker wrote the feature.
        _ = try s.connection.command(["HSET", "tessera:user_stats:1", s.view.features[0].name, "5"])
        s.writer.discard(partitions: [3])
        s.clock.advance(by: 1_000_000)
        try write(s, [(0, 1, true)], partition: 3)
        #expect(try fields(s, user: 1).contains(s.view.features[0].name) == false)
    }
}
