import TesseraCore
import TesseraRedis
import TesseraTopology

/// How feature rows look in Redis (docs/design.md, "The online store"). The one home of the
/// layouts: keys, and feature values written and read back. A topology chooses its layout
/// (`OnlineFormat`): Tessera's own, below, or Feast's (`FeastEncoding`), which an unmodified
/// Feast reads; `codec(_:)` gives a view's keys and encodings in its layout.
///
/// Tessera's layout, readable by any Redis client:
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

    /// The key that says Redis still holds what the worker wrote of one input partition: set
    /// once every row of the partition is written, checked every second. Its absence means Redis
    /// lost its data (restarted empty, flushed) and the partition's rows are rewritten from the
    /// state. `#` appears in no view name, so the key is no feature row's.
    ///
    ///     PREFIX + "#sentinel:" + group + ":" + topic + ":" + partition
    public func sentinelKey(group: String, topic: String, partition: Int32) -> String {
        prefix + "#sentinel:" + group + ":" + topic + ":" + String(partition)
    }

    /// A view's keys and encodings in its topology's layout.
    package func codec(_ view: FeatureView) -> ViewCodec { ViewCodec(view, prefix: prefix) }

    /// Appends the command that reads the row of an entity of `view` (see `OnlineRow`).
    public func appendRead(_ view: FeatureView, key: [Value], to resp: inout RESPBuffer) {
        let codec = codec(view)
        codec.appendRead(key: codec.key(key), to: &resp)
    }

    /// The key of an entity as text, for messages (Feast's binary keys are described).
    public func display(_ view: FeatureView, key: [Value]) -> String { codec(view).display(key) }


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
        DecimalText.append(value, to: &out)
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

/// One view's rows in its topology's layout: how an entity's key is made, what the hash fields
/// are called and how values and timestamps are written and read back.
package struct ViewCodec: Sendable {
    package let view: String
    package let format: OnlineFormat
    /// The key's bytes before the join-key values (Tessera: prefix and view; Feast: the count
    /// and the join-key names), the order the values are written in, and what follows them
    /// (Feast: the project).
    private let head: [UInt8]
    private let order: [Int]
    private let tail: [UInt8]
    /// The hash field of each feature, and the fields of the row's event and created times.
    package let fields: [[UInt8]]
    package let eventField: [UInt8]
    package let createdField: [UInt8]
    package let types: [ValueType]
    package let ttlMillis: Int64

    init(_ v: FeatureView, prefix: String) {
        view = v.name
        format = v.onlineFormat
        types = v.spec.features.map { v.spec.outputType(of: $0) }
        ttlMillis = v.ttl / 1_000
        switch v.onlineFormat {
        case .tessera:
            head = Array((prefix + v.name).utf8)
            order = Array(v.joinKeys.indices)
            tail = []
            fields = v.spec.features.map { Array($0.name.utf8) }
            eventField = Array(OnlineLayout.eventTimeField.utf8)
            createdField = Array(OnlineLayout.createdTimeField.utf8)
        case .feast(let project):
            // Feast sorts the join keys by name (Python's order: by code point, here by UTF-8 bytes).
            order = v.joinKeys.indices.sorted { Array(v.joinKeys[$0].name.utf8).lexicographicallyPrecedes(Array(v.joinKeys[$1].name.utf8)) }
            head = FeastEncoding.keyHead(sortedNames: order.map { v.joinKeys[$0].name })
            tail = Array(project.utf8)
            fields = v.spec.features.map { FeastEncoding.field(view: v.name, feature: $0.name) }
            eventField = Array("_ts:\(v.name)".utf8)
            createdField = Array("_created_ts:\(v.name)".utf8)
        }
    }

    /// Appends the key of the entity at row `row` of the emission key columns.
    package func appendKey(columns: [Column], row: Int, to out: inout [UInt8]) {
        out.append(contentsOf: head)
        for k in order {
            let column = columns[k]
            switch (format, column.type) {
            case (.tessera, .string):
                out.append(UInt8(ascii: ":"))
                column.withUTF8(at: row) { bytes in
                    for b in bytes {
                        if b == UInt8(ascii: ":") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                        out.append(b)
                    }
                }
            case (.tessera, _):
                out.append(UInt8(ascii: ":"))
                DecimalText.append(column.ints[row], to: &out)
            case (.feast, .string):
                column.withUTF8(at: row) { FeastEncoding.appendStringKey($0, to: &out) }
            case (.feast, _):
                FeastEncoding.appendInt64Key(column.ints[row], to: &out)
            }
        }
        out.append(contentsOf: tail)
    }

    /// The key of an entity, from its join-key values in the view's order.
    package func key(_ values: [Value]) -> [UInt8] {
        let columns = values.map { v -> Column in
            var c: Column
            switch v {
            case .int: c = Column(type: .int64)
            case .string: c = Column(type: .string)
            case .double: c = Column(type: .float64)
            case .bool: c = Column(type: .bool)
            }
            c.append(v)
            return c
        }
        var out: [UInt8] = []
        appendKey(columns: columns, row: 0, to: &out)
        return out
    }

    /// The key as text for messages: Tessera's keys as they are, Feast's (binary) described.
    package func display(_ values: [Value]) -> String {
        switch format {
        case .tessera: return String(decoding: key(values), as: UTF8.self)
        case .feast(let project): return "the Feast key of \(view) \(values.map(\.description).joined(separator: ",")) in project \(project)"
        }
    }

    /// Appends the hash value of a non-string feature held as bits (see `OnlineLayout.appendValue`).
    @inline(__always)
    package func appendValue(bits: UInt64, type: ValueType, to out: inout [UInt8]) {
        switch format {
        case .tessera: OnlineLayout.appendValue(bits: bits, type: type, to: &out)
        case .feast: FeastEncoding.appendValue(bits: bits, type: type, to: &out)
        }
    }

    /// Appends the hash value of a string feature.
    @inline(__always)
    package func appendString(_ bytes: ArraySlice<UInt8>, to out: inout [UInt8]) {
        switch format {
        case .tessera: out.append(contentsOf: bytes)
        case .feast: FeastEncoding.appendString(bytes, to: &out)
        }
    }

    /// Appends the hash value of a row's event or created time (µs since the epoch).
    @inline(__always)
    package func appendTime(_ t: Micros, to out: inout [UInt8]) {
        switch format {
        case .tessera: DecimalText.append(t, to: &out)
        case .feast: FeastEncoding.appendTimestamp(t, to: &out)
        }
    }

    /// Whether keys may be shared with other views (Feast's layout: one hash per entity key for
    /// every view on those keys), so an expiry may only ever be lengthened.
    package var sharesKeys: Bool { format != .tessera }

    // MARK: - Reading

    /// Appends the command that reads an entity's row: `HGETALL` (Tessera), `HMGET` of the
    /// view's fields (Feast: the hash holds other views' fields too).
    package func appendRead(key: [UInt8], to resp: inout RESPBuffer) {
        switch format {
        case .tessera:
            resp.begin(arguments: 2)
            resp.argument(Array("HGETALL".utf8))
            resp.argument(key)
        case .feast:
            resp.begin(arguments: 4 + fields.count)
            resp.argument(Array("HMGET".utf8))
            resp.argument(key)
            for f in fields { resp.argument(f) }
            resp.argument(eventField)
            resp.argument(createdField)
        }
    }

    /// A row read by `appendRead`: feature values (absent ones are null), event and created time.
    package func row(reply: RedisReply, names: [String]) throws(RedisError) -> (values: [String: Value], eventTime: Micros?, createdTime: Micros?) {
        guard case .array(let items) = reply else {
            if case .error(let message) = reply { throw RedisError(message: "Redis refused to read a row of \(view): \(message)", isRetriable: false) }
            throw RedisError(message: "Redis answered a read of \(view) with \(reply)", isRetriable: false)
        }
        var values: [String: Value] = [:]
        var event: Micros?, created: Micros?
        switch format {
        case .tessera:
            var i = 0
            while i + 1 < items.count {
                if let name = items[i].text, let text = items[i + 1].text {
                    if name == OnlineLayout.eventTimeField { event = Int64(text) }
                    else if name == OnlineLayout.createdTimeField { created = Int64(text) }
                    else if let f = names.firstIndex(of: name) { values[name] = OnlineLayout.parse(text, as: types[f]) }
                }
                i += 2
            }
        case .feast:
            func bytes(_ i: Int) -> [UInt8]? {
                guard i < items.count, case .string(let b) = items[i] else { return nil }
                return b
            }
            for (f, name) in names.enumerated() {
                if let b = bytes(f), let v = FeastEncoding.value(b, as: types[f]) { values[name] = v }
            }
            event = bytes(names.count).flatMap(FeastEncoding.timestamp)
            created = bytes(names.count + 1).flatMap(FeastEncoding.timestamp)
        }
        return (values, event, created)
    }
}
