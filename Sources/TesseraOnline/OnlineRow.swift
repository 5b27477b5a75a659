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
        let redisKey = layout.key(view: view.name, values: key)
        return try OnlineRow(view: view, key: key, redisKey: redisKey, reply: try connection.command(["HGETALL", redisKey]))
    }

    /// The row in an `HGETALL` reply.
    public init(view: FeatureView, key: [Value], redisKey: String, reply: RedisReply) throws {
        self.init(key: key, fields: [:])
        let items: [RedisReply]
        switch reply {
        case .array(let a): items = a
        case .error(let message): throw RedisError(message: "Redis refused to read \(redisKey): \(message)", isRetriable: false)
        default: throw RedisError(message: "Redis answered HGETALL \(redisKey) with \(reply)", isRetriable: false)
        }
        var row = self
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
        self = row
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
