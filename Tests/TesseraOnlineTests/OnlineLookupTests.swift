import Foundation
import Testing
import TesseraCore
import TesseraOnline
import TesseraRedis
import TesseraTestSupport
import TesseraTopology

/// Online lookups in Feast's request and response shapes (`POST /get-online-features`).
@Suite("Online lookups in Feast's shapes", .serialized)
struct OnlineLookupTests {
    static let now: Micros = 1_767_225_600_000_000  // 2026-01-01T00:00:00Z
    static let day: Micros = 86_400_000_000

    /// Rows as the worker writes them: HSET of the features plus `_event_ts` / `_created_ts`.
    static func write(_ connection: RedisConnection, user: Int64, eventTime: Micros, fields: [String: String]) throws {
        var args = ["HSET", "tessera:user_stats:\(user)", "_event_ts", String(eventTime), "_created_ts", String(eventTime + 1)]
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { args += [k, v] }
        _ = try connection.command(args)
    }

    func respond(_ request: String, redis: RedisServer, maxAgeStatus: Bool = false) throws -> [String: Any] {
        let lookup = OnlineLookup(topologies: [try growth()], maxAgeStatus: maxAgeStatus)
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        let body = try lookup.respond(to: Array(request.utf8), connection: connection, now: Self.now)
        return try JSONSerialization.jsonObject(with: Data(body)) as! [String: Any]
    }

    @Test("the request of Feast's documentation gets a column-major response: names, values, statuses, event timestamps")
    func feastShapes() throws {
        let redis = try RedisServer()
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        try Self.write(connection, user: 1001, eventTime: Self.now - 1_500_000, fields: ["total_orders_1h": "3", "avg_order_amount_7d": "12.5", "last_status": "paid"])
        try Self.write(connection, user: 1002, eventTime: Self.now - 2_000_000, fields: ["total_orders_1h": "1"])
        // Feast's documented request: features as VIEW:FEATURE, entities column-wise; 1003 has no row.
        let response = try respond("""
            {"features": ["user_stats:total_orders_1h", "user_stats:avg_order_amount_7d", "user_stats:last_status"],
             "entities": {"user_id": [1001, 1002, 1003]}}
            """, redis: redis)
        let metadata = response["metadata"] as! [String: Any]
        #expect(metadata["feature_names"] as! [String] == ["user_id", "total_orders_1h", "avg_order_amount_7d", "last_status"])
        let results = response["results"] as! [[String: Any]]
        #expect(results.count == 4)
        for r in results { #expect(Set(r.keys) == ["values", "statuses", "event_timestamps"]) }
        #expect(results[0]["values"] as! [Int] == [1001, 1002, 1003])
        #expect(results[0]["statuses"] as! [String] == ["PRESENT", "PRESENT", "PRESENT"])
        #expect(results[0]["event_timestamps"] as! [String] == Array(repeating: "1970-01-01T00:00:00Z", count: 3))
        #expect((results[1]["values"] as! [Any?]).map { $0 as? Int } == [3, 1, nil])
        #expect(results[1]["statuses"] as! [String] == ["PRESENT", "PRESENT", "NOT_FOUND"])
        #expect(results[1]["event_timestamps"] as! [String] == ["2025-12-31T23:59:58.500Z", "2025-12-31T23:59:58Z", "1970-01-01T00:00:00Z"])
        #expect((results[2]["values"] as! [Any?]).map { $0 as? Double } == [12.5, nil, nil])
        #expect(results[2]["statuses"] as! [String] == ["PRESENT", "NOT_FOUND", "NOT_FOUND"])
        #expect((results[3]["values"] as! [Any?]).map { $0 as? String } == ["paid", nil, nil])

        let full = try respond(#"{"features": ["user_stats:total_orders_1h"], "entities": {"user_id": [1001]}, "full_feature_names": true}"#, redis: redis)
        #expect((full["metadata"] as! [String: Any])["feature_names"] as! [String] == ["user_id", "user_stats__total_orders_1h"])
    }

    @Test("a key holding something else than a row is an error, for get and for serve, never a missing row")
    func errorRepliesAreErrors() throws {
        let redis = try RedisServer()
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        _ = try connection.command(["SET", "tessera:user_stats:1001", "not a hash"])
        let view = try growth().views[0]
        #expect {
            _ = try OnlineRow.fetch(view: view, key: [.int(1001)], layout: OnlineLayout(), connection: connection)
        } throws: { "\($0)".contains("WRONGTYPE") }
        #expect(try OnlineRow.fetch(view: view, key: [.int(1002)], layout: OnlineLayout(), connection: connection).isAbsent)
        #expect {
            _ = try respond(#"{"features": ["user_stats:total_orders_1h"], "entities": {"user_id": [1002, 1001]}}"#, redis: redis)
        } throws: { "\($0)".contains("WRONGTYPE") }
    }

    @Test("rows are served however old, as Feast's Redis store does; with maxAgeStatus, OUTSIDE_MAX_AGE exactly past the TTL (1d)")
    func ttlEdge() throws {
        let redis = try RedisServer()
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        try Self.write(connection, user: 1, eventTime: Self.now - Self.day, fields: ["total_orders": "5"])       // exactly the TTL: still fresh
        try Self.write(connection, user: 2, eventTime: Self.now - Self.day - 1, fields: ["total_orders": "6"])   // 1 µs past it
        let request = #"{"features": ["user_stats:total_orders"], "entities": {"user_id": [1, 2]}}"#
        let results = try respond(request, redis: redis, maxAgeStatus: true)["results"] as! [[String: Any]]
        #expect(results[1]["statuses"] as! [String] == ["PRESENT", "OUTSIDE_MAX_AGE"])
        #expect(results[1]["values"] as! [Int] == [5, 6])
        let asFeast = try respond(request, redis: redis)["results"] as! [[String: Any]]
        #expect(asFeast[1]["statuses"] as! [String] == ["PRESENT", "PRESENT"])
        #expect(asFeast[1]["values"] as! [Int] == [5, 6])
    }

    @Test("a feature service named after a view answers every feature of the view, in order")
    func featureService() throws {
        let redis = try RedisServer()
        let connection = RedisConnection(endpoint: try RedisEndpoint(url: redis.url, environment: [:]), logger: quiet)
        try Self.write(connection, user: 1001, eventTime: Self.now - 1_500_000, fields: ["total_orders": "3", "last_status": "paid"])
        let response = try respond(#"{"feature_service": "user_stats", "entities": {"user_id": [1001, 1003]}, "full_feature_names": true}"#, redis: redis)
        let view = try growth().views[0]
        #expect((response["metadata"] as! [String: Any])["feature_names"] as! [String] == ["user_id"] + view.features.map { "user_stats__\($0.name)" })
        let results = response["results"] as! [[String: Any]]
        let byName = Dictionary(uniqueKeysWithValues: zip(view.features.map(\.name), results.dropFirst()))
        #expect((byName["total_orders"]!["values"] as! [Any?]).map { $0 as? Int } == [3, nil])
        #expect(byName["last_status"]!["statuses"] as! [String] == ["PRESENT", "NOT_FOUND"])
        #expect(byName["total_orders_1h"]!["statuses"] as! [String] == ["NOT_FOUND", "NOT_FOUND"])
    }

    @Test("bad requests are refused with what to fix", arguments: [
        (#"not json"#, "JSON object"),
        (#"{"features": [], "entities": {"user_id": [1]}}"#, "non-empty"),
        (#"{"features": ["nope:x"], "entities": {"user_id": [1]}}"#, "unknown feature view"),
        (#"{"features": ["user_stats:nope"], "entities": {"user_id": [1]}}"#, "no feature nope"),
        (#"{"features": ["user_stats:total_orders"], "entities": {"customer": [1]}}"#, "lacks user_id"),
        (#"{"features": ["user_stats:total_orders"], "entities": {"user_id": ["one"]}}"#, "takes integers"),
        (#"{"features": ["user_stats:total_orders"], "entities": {"user_id": [true]}}"#, "takes integers"),
        (#"{"feature_service": "svc", "entities": {"user_id": [1]}}"#, "unknown feature service svc"),
        (#"{"feature_service": "user_stats", "features": ["user_stats:total_orders"], "entities": {"user_id": [1]}}"#, "not both"),
    ])
    func badRequests(request: String, message: String) throws {
        let redis = try RedisServer()
        #expect {
            _ = try respond(request, redis: redis)
        } throws: { error in
            "\(error)".contains(message)
        }
    }
}
