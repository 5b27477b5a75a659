import TesseraCore

/// How feature rows look in Redis (DESIGN §3), readable by any Redis client:
///
///     key   = PREFIX + VIEW + ":" + join-key values joined by ":"   e.g. tessera:user_stats:1001
///     hash  = feature name → value as text, plus _event_ts and _created_ts (µs since the epoch)
///
/// Numbers are decimal text (floats as the shortest text that reads back to the same double),
/// booleans `true`/`false`, strings as they are. A null feature is absent from the hash. In key
/// values, `\` and `:` are escaped with a backslash. Keys expire `ttl` after their last write.
public struct OnlineLayout: Sendable, Hashable {
    public var prefix: String

    public init(prefix: String = "tessera:") { self.prefix = prefix }

    public static let eventTimeField = "_event_ts"
    public static let createdTimeField = "_created_ts"

    /// The Redis key of an entity of a view.
    public func key(view: String, values: [Value]) -> String {
        var key = prefix + view
        for v in values {
            key += ":"
            switch v {
            case .string(let s): key += OnlineLayout.escape(s)
            default: key += v.description
            }
        }
        return key
    }

    /// Appends the key of the entity at row `row` of the emission key columns.
    func appendKey(view: [UInt8], keys: [Column], row: Int, to out: inout [UInt8]) {
        out.append(contentsOf: prefix.utf8)
        out.append(contentsOf: view)
        for column in keys {
            out.append(UInt8(ascii: ":"))
            if column.type == .string {
                column.withUTF8(at: row) { bytes in
                    for b in bytes {
                        if b == UInt8(ascii: ":") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                        out.append(b)
                    }
                }
            } else {
                OnlineLayout.appendDecimal(column.ints[row], to: &out)
            }
        }
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            if c == ":" || c == "\\" { out.append("\\") }
            out.append(c)
        }
        return out
    }

    static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
        if value == 0 { return out.append(UInt8(ascii: "0")) }
        var v = value.magnitude
        if value < 0 { out.append(UInt8(ascii: "-")) }
        let start = out.count
        while v > 0 {
            out.append(UInt8(v % 10) + 0x30)
            v /= 10
        }
        out[start...].reverse()
    }

    /// The text of a double: Swift's shortest round-trip form.
    static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        if value == value.rounded(.towardZero), abs(value) < 1e15 {
            appendDecimal(Int64(value), to: &out)
            out.append(contentsOf: [UInt8(ascii: "."), UInt8(ascii: "0")])
            return
        }
        out.append(contentsOf: value.description.utf8)
    }

    /// Parses a hash field back into a value of `type` (for `tessera get` and tests).
    public static func parse(_ text: String, as type: ValueType) -> Value? {
        switch type {
        case .int64: return Int64(text).map { .int($0) }
        case .float64: return Double(text).map { .double($0) }
        case .bool: return text == "true" ? .bool(true) : (text == "false" ? .bool(false) : nil)
        case .string: return .string(text)
        }
    }
}
