import Foundation
import Testing
import TesseraCore
@testable import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology

/// Feast's Redis layout: bytes against those Feast 0.67 itself produces (`_mmh3`, `_redis_key`,
/// `Value.SerializeToString`, `Timestamp.SerializeToString`, printed by Feast's own Python code),
/// and rows written by the online writer read back from a real redis-server. That an unmodified
/// Feast reads them is tests/system/test_feast.py.
@Suite("Feast's online layout", .serialized)
struct FeastLayoutTests {
    static let shop = """
        team: shop
        online: {layout: feast, project: shop}
        sources:
          - name: orders
            topic: orders
            format: json
            timestamp: {field: t, unit: ms}
            fields: {user_id: int64, card_id: string, amount: float64, status: string, paid: bool}
        entities:
          - {name: user, join_keys: {user_id: int64}}
          - {name: card, join_keys: {card_id: string}}
        feature_views:
          - name: recent
            entities: [user]
            source: orders
            ttl: 2h
            features:
              - {name: orders_1h, aggregate: count, window: 1h}
              - {name: amount_1h, aggregate: sum, field: amount, window: 1h}
              - {name: last_status, aggregate: last, field: status, window: lifetime}
              - {name: last_paid, aggregate: last, field: paid, window: lifetime}
              - {name: max_amount_1h, aggregate: max, field: amount, window: 1h}
          - name: history
            entities: [user]
            source: orders
            ttl: 30d
            features:
              - {name: orders_30d, aggregate: count, window: 30d}
          - name: pair
            entities: [card, user]
            source: orders
            ttl: 1d
            features:
              - {name: orders_1d, aggregate: count, window: 1d}
        """

    static func views(layout: String = "{layout: feast, project: shop}") throws -> [FeatureView] {
        try TopologyLoader.parse(yaml: shop.replacingOccurrences(of: "{layout: feast, project: shop}", with: layout), file: "shop.yaml").get().views
    }

    @Test("field names are murmur3_32 of VIEW:FEATURE as Feast's _mmh3 gives them")
    func murmur() {
        let expected: [(String, [UInt8])] = [
            ("", [0, 0, 0, 0]), ("a", [178, 105, 37, 60]), ("ab", [95, 215, 191, 155]), ("abc", [250, 147, 221, 179]),
            ("abcd", [106, 103, 237, 67]), ("abcde", [246, 154, 155, 232]),
            ("user_stats:total_orders_1h", [243, 151, 89, 228]), ("card_merchant:amount_mean_30d", [252, 52, 26, 14]),
            ("é:ü", [136, 197, 153, 89]),
        ]
        for (text, bytes) in expected {
            let h = FeastEncoding.murmur3(Array(text.utf8))
            #expect([UInt8(h & 0xff), UInt8(h >> 8 & 0xff), UInt8(h >> 16 & 0xff), UInt8(h >> 24)] == bytes, "\(text)")
        }
        #expect(FeastEncoding.field(view: "user_stats", feature: "total_orders_1h") == [243, 151, 89, 228])
    }

    @Test("keys are Feast's serialized entity key (version 3, join keys sorted by name) followed by the project")
    func keys() throws {
        let views = try Self.views()
        let layout = OnlineLayout()
        // _redis_key("shop", EntityKey(join_keys=["user_id"], entity_values=[Value(int64_val=1001)]))
        let user: [UInt8] = [1, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0] + Array("user_id".utf8) + [4, 0, 0, 0, 8, 0, 0, 0, 0xe9, 3, 0, 0, 0, 0, 0, 0]
            + Array("shop".utf8)
        #expect(layout.codec(views[0]).key([.int(1001)]) == user)
        // Two join keys, given in the view's order (card, user) and written sorted (card_id, user_id);
        // Feast: EntityKey(join_keys=["user_id", "card_id"], entity_values=[int64 -7, string "c:1é"]).
        var pair: [UInt8] = [2, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0] + Array("card_id".utf8) + [2, 0, 0, 0, 7, 0, 0, 0] + Array("user_id".utf8)
        pair += [2, 0, 0, 0, 5, 0, 0, 0] + Array("c:1é".utf8) + [4, 0, 0, 0, 8, 0, 0, 0, 249, 255, 255, 255, 255, 255, 255, 255]
        pair += Array("shop".utf8)
        #expect(layout.codec(views[2]).key([.string("c:1é"), .int(-7)]) == pair)
        // The same key from emission columns, as the writer builds it.
        var cards = Column(type: .string), users = Column(type: .int64)
        cards.append(.string("c:1é"))
        users.append(.int(-7))
        var fromColumns: [UInt8] = []
        layout.codec(views[2]).appendKey(columns: [cards, users], row: 0, to: &fromColumns)
        #expect(fromColumns == pair)
    }

    @Test("values and timestamps are Feast's protobufs, a zero with its tag; they read back as written")
    func values() {
        func bytes(_ body: (inout [UInt8]) -> Void) -> [UInt8] {
            var out: [UInt8] = []
            body(&out)
            return out
        }
        #expect(bytes { FeastEncoding.appendValue(bits: 0, type: .int64, to: &$0) } == [32, 0])
        #expect(bytes { FeastEncoding.appendValue(bits: UInt64(bitPattern: -1), type: .int64, to: &$0) } == [32, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1])
        #expect(bytes { FeastEncoding.appendValue(bits: 300, type: .int64, to: &$0) } == [32, 172, 2])
        #expect(bytes { FeastEncoding.appendValue(bits: 2.5.bitPattern, type: .float64, to: &$0) } == [41, 0, 0, 0, 0, 0, 0, 4, 64])
        #expect(bytes { FeastEncoding.appendValue(bits: 0, type: .bool, to: &$0) } == [56, 0])
        #expect(bytes { FeastEncoding.appendString(Array("paid".utf8), to: &$0) } == [18, 4, 112, 97, 105, 100])
        #expect(bytes { FeastEncoding.appendTimestamp(0, to: &$0) } == [])
        #expect(bytes { FeastEncoding.appendTimestamp(1_767_225_600_123_456, to: &$0) } == [8, 128, 242, 214, 202, 6, 16, 128, 148, 239, 58])
        #expect(bytes { FeastEncoding.appendTimestamp(-1_500_000, to: &$0) } == [8, 254, 255, 255, 255, 255, 255, 255, 255, 255, 1, 16, 128, 202, 181, 238, 1])

        var g = SeededGenerator(seed: 5)
        for _ in 0..<2_000 {
            let i = Int64.random(in: .min ... .max, using: &g), d = Double(bitPattern: UInt64.random(in: 0 ... .max, using: &g))
            #expect(FeastEncoding.value(bytes { FeastEncoding.appendValue(bits: UInt64(bitPattern: i), type: .int64, to: &$0) }, as: .int64) == .int(i))
            let back = FeastEncoding.value(bytes { FeastEncoding.appendValue(bits: d.bitPattern, type: .float64, to: &$0) }, as: .float64)
            if case .double(let b)? = back { #expect(b.bitPattern == d.bitPattern) } else { Issue.record("\(d) read back as \(String(describing: back))") }
            let t = Micros.random(in: -(1 << 55) ... (1 << 55), using: &g)
            #expect(FeastEncoding.timestamp(bytes { FeastEncoding.appendTimestamp(t, to: &$0) }) == t)
        }
        #expect(FeastEncoding.value(bytes { FeastEncoding.appendString(Array("ü".utf8), to: &$0) }, as: .string) == .string("ü"))
        #expect(FeastEncoding.value(bytes { FeastEncoding.appendValue(bits: 1, type: .bool, to: &$0) }, as: .bool) == .bool(true))
        // An empty Value is Feast's null; a truncated one is not read as anything.
        #expect(FeastEncoding.value([], as: .int64) == nil)
        #expect(FeastEncoding.value([41, 0, 0], as: .float64) == nil)
    }

    @Test("rows written in Feast's layout read back; views on one entity share its hash, whose expiry only the longest TTL sets")
    func sharedHash() throws {
        let redis = try RedisServer()
        let endpoint = try RedisEndpoint(url: redis.url, environment: [:])
        let connection = RedisConnection(endpoint: endpoint, logger: quiet)
        let views = try Self.views()
        let start: Micros = 1_767_225_600_123_456
        let clock = SteppedClock(start)
        let writer = OnlineWriter(layout: OnlineLayout(), connection: RedisConnection(endpoint: endpoint, logger: quiet), views: views,
                                  logger: quiet, clock: clock)
        func emit(_ view: FeatureView, keys: [Value], features: [Value?]) {
            var batch = EmissionBatch(keyTypes: view.spec.keyTypes, featureTypes: view.spec.features.map { view.spec.outputType(of: $0) })
            batch.eventTimes.append(clock.now())
            batch.entityIds.append(0)
            batch.closers.append(-1)
            for (k, v) in keys.enumerated() { batch.keys[k].append(v) }
            for (f, v) in features.enumerated() { batch.features[f].append(v) }
            writer.add(view: view.name, partition: 0, emissions: batch, created: [clock.now() + 7])
        }
        let recent = views[0], history = views[1], pair = views[2]
        emit(history, keys: [.int(1001)], features: [.int(0)])
        emit(recent, keys: [.int(1001)], features: [.int(3), .double(-0.0), .string("paid"), .bool(false), nil])
        emit(pair, keys: [.string("c:1"), .int(1001)], features: [.int(1)])
        try writer.flush()

        let layout = OnlineLayout()
        let row = try OnlineRow.fetch(view: recent, key: [.int(1001)], layout: layout, connection: connection)
        #expect(row.fields == ["orders_1h": .int(3), "amount_1h": .double(-0.0), "last_status": .string("paid"), "last_paid": .bool(false)])
        #expect(row.eventTime == start && row.createdTime == start + 7)
        #expect(try OnlineRow.fetch(view: history, key: [.int(1001)], layout: layout, connection: connection).fields == ["orders_30d": .int(0)])
        #expect(try OnlineRow.fetch(view: pair, key: [.string("c:1"), .int(1001)], layout: layout, connection: connection).fields == ["orders_1d": .int(1)])
        #expect(try OnlineRow.fetch(view: recent, key: [.int(1002)], layout: layout, connection: connection).isAbsent)

        // One hash for both views of user 1001: 5 + 1 feature fields (one null, so absent) and each view's two times.
        let key = layout.codec(recent).key([.int(1001)])
        func call(_ arguments: [[UInt8]]) throws -> RedisReply {
            var resp = RESPBuffer()
            resp.begin(arguments: arguments.count)
            for a in arguments { resp.argument(a) }
            return try connection.send(resp)[0]
        }
        #expect(try call([Array("HLEN".utf8), key]) == .integer(4 + 1 + 2 + 2))
        #expect(try call([Array("DBSIZE".utf8)]) == .integer(2))
        func pttl() throws -> Int64 {
            guard case .integer(let t) = try call([Array("PTTL".utf8), key]) else { return -3 }
            return t
        }
        let month: Int64 = 30 * 86_400_000, hours2: Int64 = 2 * 3_600_000
        #expect(try pttl() > month, "the 2 h view cut the 30 d view's expiry short")
        // The short view alone writes again once its expiry is due: the hash keeps the longer one.
        clock.advance(by: hours2 / 10 * 1_000)
        emit(recent, keys: [.int(1001)], features: [.int(4), .double(1), .string("paid"), .bool(true), .double(1)])
        try writer.flush()
        #expect(try pttl() > month)
        // A hash only the short view holds gets the short expiry, and is lengthened, never shortened.
        emit(recent, keys: [.int(7)], features: [.int(1), .double(1), nil, nil, nil])
        try writer.flush()
        let seven = layout.codec(recent).key([.int(7)])
        guard case .integer(let short) = try call([Array("PTTL".utf8), seven]) else { Issue.record("no expiry"); return }
        #expect(short > hours2 && short <= hours2 + hours2 / 10)
        emit(history, keys: [.int(7)], features: [.int(1)])
        try writer.flush()
        guard case .integer(let long) = try call([Array("PTTL".utf8), seven]) else { Issue.record("no expiry"); return }
        #expect(long > month)
        // A feature going null is deleted from the hash (Feast reads an absent field as null).
        emit(recent, keys: [.int(1001)], features: [.int(4), nil, .string("paid"), .bool(true), .double(1)])
        try writer.flush()
        #expect(try OnlineRow.fetch(view: recent, key: [.int(1001)], layout: layout, connection: connection).fields["amount_1h"] == nil)
        #expect(try call([Array("HLEN".utf8), key]) == .integer(4 + 1 + 2 + 2))
    }
}
