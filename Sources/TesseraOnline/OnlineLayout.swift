import TesseraCore

/// How feature rows look in Redis (docs/design.md, "The online store"), readable by any Redis
/// client. The one home of the layout: keys, and feature values written and read back.
///
///     key   = PREFIX + VIEW + ":" + join-key values joined by ":"   e.g. tessera:user_stats:1001
///     hash  = feature name → value as text, plus _event_ts and _created_ts (µs since the epoch)
///
/// Numbers are decimal text (floats as the shortest text that reads back to the same double),
/// booleans `true`/`false`, strings as they are. A null feature is absent from the hash. In key
/// values, `\` and `:` are escaped with a backslash. Keys expire between `ttl` and 1.1 × `ttl`
/// after their last write (the writer refreshes an expiry at most once per 10 % of the TTL).
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

    /// The key that says Redis still holds what the worker wrote of one input partition: set
    /// once every row of the partition is written, checked every second. Its absence means Redis
    /// lost its data (restarted empty, flushed) and the partition's rows are rewritten from the
    /// state. `#` appears in no view name, so the key is no feature row's.
    ///
    ///     PREFIX + "#sentinel:" + group + ":" + topic + ":" + partition
    public func sentinelKey(group: String, topic: String, partition: Int32) -> String {
        prefix + "#sentinel:" + group + ":" + topic + ":" + String(partition)
    }

    /// Appends the key of the entity at row `row` of the emission key columns.
    package func appendKey(view: [UInt8], keys: [Column], row: Int, to out: inout [UInt8]) {
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
                DecimalText.append(column.ints[row], to: &out)
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

    /// Appends the hash value of a non-string feature held as bits (an Int64's or a Double's
    /// bit pattern, a Bool as 0/1): decimal integers, doubles as the shortest text that reads
    /// back to the same double (integral ones with ".0"), `true`/`false`. Strings are their
    /// bytes. `parse` reads every one of these back to the same value.
    package static func appendValue(bits: UInt64, type: ValueType, to out: inout [UInt8]) {
        switch type {
        case .int64: DecimalText.append(Int64(bitPattern: bits), to: &out)
        case .float64: appendDouble(Double(bitPattern: bits), to: &out)
        case .bool: out.append(contentsOf: bits != 0 ? trueText : falseText)
        case .string: preconditionFailure("strings are written as their bytes")
        }
    }

    /// The hash value of a feature value (what `appendValue` writes; strings as they are).
    public static func text(of value: Value) -> String {
        var out: [UInt8] = []
        switch value {
        case .int(let i): appendValue(bits: UInt64(bitPattern: i), type: .int64, to: &out)
        case .double(let d): appendValue(bits: d.bitPattern, type: .float64, to: &out)
        case .bool(let b): appendValue(bits: b ? 1 : 0, type: .bool, to: &out)
        case .string(let s): return s
        }
        return String(decoding: out, as: UTF8.self)
    }

    static let trueText = Array("true".utf8), falseText = Array("false".utf8)

    /// The text of a double: Swift's shortest round-trip form.
    static func appendDouble(_ value: Double, to out: inout [UInt8]) {
        if value == value.rounded(.towardZero), abs(value) < 1e15 {
            DecimalText.append(Int64(value), to: &out)
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
