import Foundation
import TesseraCore
import TesseraRedis
import TesseraTopology

/// Online lookups in Feast's shapes (`POST /get-online-features` of Feast's feature server), so
/// that clients written against Feast read Tessera's Redis rows unchanged:
///
///     {"features": ["user_stats:total_orders_1h"], "entities": {"user_id": [1001, 1002]},
///      "full_feature_names": false}
///  →  {"metadata": {"feature_names": ["user_id", "total_orders_1h"]},
///      "results": [{"values": [1001, 1002], "statuses": ["PRESENT", "PRESENT"],
///                   "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
///                  {"values": [3, null], "statuses": ["PRESENT", "NOT_FOUND"],
///                   "event_timestamps": ["2026-01-01T12:00:00.5Z", "1970-01-01T00:00:00Z"]}]}
///
/// Column-major: one result per requested column (join keys first, then features). Instead of
/// `features`, a request may name a `feature_service`: every view is one, named after it
/// (`tessera feast-repo` generates the same services for Feast). Rows are read in each view's
/// layout (Tessera's or Feast's). Statuses: PRESENT; NOT_FOUND (no row, or the feature is null
/// in it). Like Feast's feature server over its Redis store, a row is served however old it is:
/// Redis expires it (between TTL and 1.1 × TTL after its last write). With `maxAgeStatus`, a row
/// whose event time is more than the view's TTL before now is marked OUTSIDE_MAX_AGE (its value
/// still returned).
public struct OnlineLookup: Sendable {
    public let layout: OnlineLayout
    private let views: [String: FeatureView]
    /// Whether rows older than their view's TTL are marked OUTSIDE_MAX_AGE.
    public var maxAgeStatus: Bool

    public init(topologies: [Topology], layout: OnlineLayout = OnlineLayout(), maxAgeStatus: Bool = false) {
        self.layout = layout
        self.maxAgeStatus = maxAgeStatus
        var views: [String: FeatureView] = [:]
        for t in topologies { for v in t.views where v.online { views[v.name] = v } }
        self.views = views
    }

    /// A request the caller got wrong (HTTP 400), with what to fix.
    public struct RequestError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    struct Request {
        var features: [(view: FeatureView, feature: String)]
        var keys: [(name: String, type: ValueType, values: [Value])]
        var rows: Int
        var fullNames: Bool
    }

    func parse(_ body: [UInt8]) throws(RequestError) -> Request {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)), let json = object as? [String: Any] else {
            throw RequestError(description: "the body must be a JSON object with \"features\" and \"entities\"")
        }
        let references: [String]
        if let service = json["feature_service"] {
            guard json["features"] == nil else { throw RequestError(description: "give \"features\" or \"feature_service\", not both") }
            guard let name = service as? String, let view = views[name] else {
                throw RequestError(description: "unknown feature service \(service) (each online view is one: \(views.keys.sorted().joined(separator: ", ")))")
            }
            references = view.spec.features.map { "\(name):\($0.name)" }
        } else {
            guard let list = json["features"] as? [String], !list.isEmpty else {
                throw RequestError(description: "\"features\" must be a non-empty list of \"VIEW:FEATURE\" (or name a \"feature_service\")")
            }
            references = list
        }
        guard let entities = json["entities"] as? [String: Any] else {
            throw RequestError(description: "\"entities\" must map each join key to a list of values")
        }
        var features: [(FeatureView, String)] = []
        var keyOrder: [(String, ValueType)] = []
        for reference in references {
            let parts = reference.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, let view = views[parts[0]] else {
                throw RequestError(description: "unknown feature view in \(reference) (online views: \(views.keys.sorted().joined(separator: ", ")))")
            }
            guard view.spec.features.contains(where: { $0.name == parts[1] }) else {
                throw RequestError(description: "view \(parts[0]) has no feature \(parts[1])")
            }
            features.append((view, parts[1]))
            for key in view.joinKeys where !keyOrder.contains(where: { $0.0 == key.name }) { keyOrder.append((key.name, key.type)) }
        }
        var keys: [(String, ValueType, [Value])] = []
        var rows: Int?
        for (name, type) in keyOrder {
            guard let list = entities[name] as? [Any] else {
                throw RequestError(description: "\"entities\" lacks \(name), a join key of the requested views")
            }
            if let rows, rows != list.count { throw RequestError(description: "every entity list must have the same length (\(name) has \(list.count), not \(rows))") }
            rows = list.count
            var values: [Value] = []
            for item in list {
                switch (type, item) {
                case (.int64, let n as NSNumber) where !["c", "d", "f"].contains(String(cString: n.objCType)):
                    values.append(.int(n.int64Value))  // an integer (not a boolean, not a float)
                case (.string, let s as String):
                    values.append(.string(s))
                default:
                    throw RequestError(description: "\(name) takes \(type == .int64 ? "integers" : "strings"), got \(item)")
                }
            }
            keys.append((name, type, values))
        }
        return Request(features: features, keys: keys, rows: rows ?? 0, fullNames: json["full_feature_names"] as? Bool ?? false)
    }

    /// Answers a request body with the response body, reading Redis in one pipelined round trip.
    public func respond(to body: [UInt8], connection: RedisConnection, now: Micros) throws -> [UInt8] {
        let request = try parse(body)
        // One read per (view, row), in the view's layout.
        var viewsInOrder: [FeatureView] = []
        for (view, _) in request.features where !viewsInOrder.contains(where: { $0.name == view.name }) { viewsInOrder.append(view) }
        var pipeline = RESPBuffer()
        var keys: [String: [[Value]]] = [:]
        for view in viewsInOrder {
            keys[view.name] = (0..<request.rows).map { row in view.joinKeys.map { k in request.keys.first { $0.name == k.name }!.values[row] } }
            for key in keys[view.name]! { layout.appendRead(view, key: key, to: &pipeline) }
        }
        let replies = request.rows == 0 ? [] : try connection.send(pipeline)
        // An error reply (a wrong type at the key) is a failure, not a missing row.
        var fetched: [String: [OnlineRow]] = [:]
        for (v, view) in viewsInOrder.enumerated() {
            fetched[view.name] = try (0..<request.rows).map { row in
                try OnlineRow(view: view, key: keys[view.name]![row], layout: layout, reply: replies[v * request.rows + row])
            }
        }

        var names: [String] = request.keys.map(\.name)
        var results: [String] = []
        let epoch = "\"1970-01-01T00:00:00Z\""
        for key in request.keys {
            let values = key.values.map { OnlineLookup.json($0) }
            results.append(OnlineLookup.vector(values, Array(repeating: "\"PRESENT\"", count: request.rows), Array(repeating: epoch, count: request.rows)))
        }
        for (view, feature) in request.features {
            names.append(request.fullNames ? "\(view.name)__\(feature)" : feature)
            var values: [String] = [], statuses: [String] = [], times: [String] = []
            for row in fetched[view.name]! {
                let eventTime = row.eventTime
                let value = row.fields[feature]
                values.append(value.map(OnlineLookup.json) ?? "null")
                times.append(eventTime.map { "\"\(OnlineLookup.timestamp($0))\"" } ?? epoch)
                if value == nil {
                    statuses.append("\"NOT_FOUND\"")
                } else if maxAgeStatus, view.ttl > 0, let t = eventTime, now - t > view.ttl {
                    statuses.append("\"OUTSIDE_MAX_AGE\"")
                } else {
                    statuses.append("\"PRESENT\"")
                }
            }
            results.append(OnlineLookup.vector(values, statuses, times))
        }
        let text = "{\"metadata\":{\"feature_names\":[" + names.map(JSONText.quoted).joined(separator: ",") + "]},\"results\":[" + results.joined(separator: ",") + "]}"
        return Array(text.utf8)
    }

    static func vector(_ values: [String], _ statuses: [String], _ times: [String]) -> String {
        "{\"values\":[" + values.joined(separator: ",") + "],\"statuses\":[" + statuses.joined(separator: ",")
            + "],\"event_timestamps\":[" + times.joined(separator: ",") + "]}"
    }

    /// Values as Feast's JSON gives them: numbers, strings, booleans; non-finite doubles as the
    /// strings "NaN", "Infinity", "-Infinity".
    static func json(_ v: Value) -> String {
        switch v {
        case .double(let d):
            if d.isNaN { return "\"NaN\"" }
            if d.isInfinite { return d > 0 ? "\"Infinity\"" : "\"-Infinity\"" }
            return "\(d)"
        case .string(let s): return JSONText.quoted(s)
        default: return v.description
        }
    }

    /// RFC 3339 in UTC with as many fraction digits as needed: none, 3 or 6 (as Feast writes them).
    static func timestamp(_ t: Micros) -> String {
        let iso = RFC3339.format(t)  // …SS.ffffffZ
        let micros = t - Time.floorDiv(t, Time.second) * Time.second
        let base = iso.prefix(19)
        if micros == 0 { return base + "Z" }
        if micros % 1_000 == 0 { return base + "." + iso.dropFirst(20).prefix(3) + "Z" }
        return iso
    }
}
