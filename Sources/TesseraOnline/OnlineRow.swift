import Foundation
import TesseraCore
import TesseraRedis
import TesseraTopology

/// An entity's row read back from Redis, typed by the view's definition.
public struct OnlineRow: Sendable {
    public var key: [Value]
    /// Feature name → value (absent features are null).
    public var fields: [String: Value]
    public var eventTime: Micros?
    public var createdTime: Micros?

    public static func fetch(view: FeatureView, key: [Value], layout: OnlineLayout, connection: RedisConnection) throws -> OnlineRow {
        let redisKey = layout.key(view: view.name, values: key)
        let reply = try connection.command(["HGETALL", redisKey])
        var row = OnlineRow(key: key, fields: [:])
        guard case .array(let items) = reply else { return row }
        var i = 0
        while i + 1 < items.count {
            if let name = items[i].text, let text = items[i + 1].text {
                if name == OnlineLayout.eventTimeField { row.eventTime = Int64(text) }
                else if name == OnlineLayout.createdTimeField { row.createdTime = Int64(text) }
                else if let f = view.spec.features.first(where: { $0.name == name }) {
                    row.fields[name] = OnlineLayout.parse(text, as: view.spec.outputType(of: f))
                }
            }
            i += 2
        }
        return row
    }

    /// `{"user_id": 1001, "total_orders_1h": 3, …, "event_timestamp": "…", "created_timestamp": "…"}`
    public func json(view: FeatureView) -> String {
        var parts: [String] = []
        for ((name, _), value) in zip(view.joinKeys, key) { parts.append("\(JSONText.quoted(name)): \(OnlineRow.json(value))") }
        for f in view.spec.features { parts.append("\(JSONText.quoted(f.name)): \(fields[f.name].map(OnlineRow.json) ?? "null")") }
        parts.append("\"event_timestamp\": \(eventTime.map { JSONText.quoted(RFC3339.format($0)) } ?? "null")")
        parts.append("\"created_timestamp\": \(createdTime.map { JSONText.quoted(RFC3339.format($0)) } ?? "null")")
        return "{" + parts.joined(separator: ", ") + "}"
    }

    static func json(_ v: Value) -> String {
        switch v {
        case .string(let s): return JSONText.quoted(s)
        case .double(let d): return d.isFinite ? String(d) : "null"
        default: return v.description
        }
    }
}

extension OnlineRow {
    /// Whether this online row holds exactly these feature values.
    public func matches(_ features: [Value?], view: FeatureView) -> Bool {
        zip(view.spec.features, features).allSatisfy { fields[$0.name] == $1 }
    }
}
