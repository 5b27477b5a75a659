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

    /// Reads the row of `key`; an entity without a row has no fields. Throws what Redis refused
    /// (a wrong type at the key, authentication), never taking an error for a missing row.
    public static func fetch(view: FeatureView, key: [Value], layout: OnlineLayout, connection: RedisConnection) throws -> OnlineRow {
        let codec = layout.codec(view)
        var resp = RESPBuffer()
        codec.appendRead(key: codec.key(key), to: &resp)
        return try OnlineRow(view: view, key: key, layout: layout, reply: try connection.send(resp)[0])
    }

    /// The row in the reply to the read of `OnlineLayout.appendRead`.
    public init(view: FeatureView, key: [Value], layout: OnlineLayout, reply: RedisReply) throws {
        let read = try layout.codec(view).row(reply: reply, names: view.spec.features.map(\.name))
        self.init(key: key, fields: read.values, eventTime: read.eventTime, createdTime: read.createdTime)
    }

    public init(key: [Value], fields: [String: Value], eventTime: Micros? = nil, createdTime: Micros? = nil) {
        self.key = key
        self.fields = fields
        self.eventTime = eventTime
        self.createdTime = createdTime
    }

    /// Whether Redis holds no row for the entity.
    public var isAbsent: Bool { fields.isEmpty && eventTime == nil && createdTime == nil }

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
