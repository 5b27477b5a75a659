import TesseraCore
import TesseraTopology
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes JSON event payloads straight into a source's column batch: one pass over the bytes,
/// no intermediate objects, no Foundation.
///
/// An event must be a JSON object. Declared payload fields are read with their declared type (an
/// int64 field accepts an integral number such as `3.0`; a float64 field accepts any number), at
/// their path (`order.amount`: the field `amount` of the object `order`); absent or `null` fields
/// are null, and so are the fields inside an absent or `null` object; undeclared fields are skipped
/// whatever they hold. Fields the source takes from the Kafka record (key, timestamp, headers) are
/// not the decoder's: it leaves their columns to the caller (`RecordFields`). The timestamp field
/// is required, unless it is one of those. Anything else — bad JSON, a value of the wrong type (an
/// object where a path needs one included), invalid UTF-8, an oversized payload, a timestamp
/// outside years 0001–9999 — rejects the whole event with a reason and leaves the batch untouched.
public struct JSONEventDecoder: Sendable {
    public let schema: Schema
    public let timestamp: TimeField
    public let maxBytes: Int

    /// The column of each payload field (the decoder's slots are the payload fields, in order).
    private let columns: [Int]
    /// The objects paths go through: node 0 is the event, each entry names a field (a slot) or
    /// an object below (another node).
    private let nodes: [Node]
    /// Node 0's entries, kept apart: the event's own fields are matched for every key of every
    /// event, and plain arrays keep that loop as tight as a flat schema's.
    private let rootNames: [[UInt8]]
    private let rootKeys: [(length: Int, head: UInt64)]
    private let rootTargets: [Int]
    private var rootPredicted = 0
    private let timestampName: [UInt8]
    private let timestampHead: UInt64
    /// The timestamp field's slot, if it is a declared payload field.
    private let timestampIndex: Int?
    /// Whether the event time is in the payload (else the caller takes it from the record).
    private let timestampInPayload: Bool

    /// Per-event scratch: where each field's value was found (raw storage, no per-write checks).
    private var storage: ScratchBuffer<Slot>
    /// `storage`'s memory for the event being decoded, re-read at the start of every `decode`
    /// (after `storage` is made unique), so a copy of the decoder never writes another's slots.
    nonisolated(unsafe) private var slots: UnsafeMutablePointer<Slot>
    private var unescaped: [[UInt8]]
    private var eventTime: Micros = 0
    private var haveTime = false
    /// Per node, the entry expected next (the one after the last matched).
    private var predicted: [Int]
    /// The event's keys as the last events wrote them, by position: the k-th key's bytes from its
    /// opening quote to its colon (`"user_id":`, in a slot of `KeyShapes.slot` bytes) and what it
    /// resolved to. A key whose bytes are the same at the same position resolves the same, without
    /// being scanned and matched again (producers write every event's keys alike).
    private var shapes = KeyShapes()

    struct KeyShapes: Sendable {
        static let slot = 32
        /// Keys past the 64th of an event take the general path (a hostile payload's many keys
        /// are not all remembered).
        static let positions = 64
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        /// What `match` gave (nil: not a declared field or object) and whether the key is the event time.
        var targets: [Int?] = []
        var isTime: [Bool] = []

        mutating func record(_ k: Int, _ key: UnsafeBufferPointer<UInt8>, target: Int?, isTime time: Bool) {
            guard key.count <= KeyShapes.slot, k <= lengths.count, k < KeyShapes.positions else { return }
            if k == lengths.count {
                bytes.append(contentsOf: repeatElement(0, count: KeyShapes.slot))
                lengths.append(0)
                targets.append(nil)
                isTime.append(false)
            }
            bytes.withUnsafeMutableBufferPointer { b in
                UnsafeMutableRawPointer(b.baseAddress! + k * KeyShapes.slot).copyMemory(from: key.baseAddress!, byteCount: key.count)
            }
            lengths[k] = key.count
            targets[k] = target
            isTime[k] = time
        }

        /// The length of key shape `k` when the payload holds it at `position`, else 0.
        @inline(__always)
        func match(_ k: Int, _ s: Scanner) -> Int {
            guard k < lengths.count else { return 0 }
            let n = lengths[k]
            guard n >= 8, s.position &+ n <= s.count else { return 0 }
            return bytes.withUnsafeBufferPointer { b in
                let want = UnsafeRawPointer(b.baseAddress! + k &* KeyShapes.slot), have = UnsafeRawPointer(s.base + s.position)
                // Eight bytes at a time, the last eight overlapping the ones before.
                var o = 0
                while o &+ 8 < n {
                    if want.loadUnaligned(fromByteOffset: o, as: UInt64.self) != have.loadUnaligned(fromByteOffset: o, as: UInt64.self) { return 0 }
                    o &+= 8
                }
                return want.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) == have.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) ? n : 0
            }
        }
    }

    private struct Slot: BitwiseCopyable {
        var kind: Kind
        /// Int64 value, Double bits, or bool as 0/1.
        var bits: UInt64
        var start: Int
        var end: Int
    }

    private enum Kind: UInt8, BitwiseCopyable { case absent, null, int, double, string, unescapedString, bool }

    /// One object's declared names, packed for matching: length and first eight bytes
    /// (little-endian, zero-padded); `targets[i]` ≥ 0 is a slot, < 0 the node `-targets[i] - 1`.
    private struct Node: Sendable {
        var names: [[UInt8]] = []
        var keys: [(length: Int, head: UInt64)] = []
        var targets: [Int] = []
        /// The path to this object, for messages.
        var path: String = ""
    }

    /// - Parameters:
    ///   - origins: where each field of `schema` comes from (default: the payload, by its name).
    public init(schema: Schema, timestamp: TimeField, origins: [FieldOrigin] = [], maxBytes: Int = 1 << 20) {
        self.schema = schema
        self.timestamp = timestamp
        self.maxBytes = maxBytes
        var columns: [Int] = []
        var nodes = [Node()]
        for c in schema.names.indices {
            guard let path = c < origins.count ? origins[c].path : [schema.names[c]] else { continue }
            let slot = columns.count
            columns.append(c)
            var node = 0
            for (depth, segment) in path.enumerated() {
                let name = Array(segment.utf8)
                if depth == path.count - 1 {
                    nodes[node].names.append(name)
                    nodes[node].keys.append((name.count, Scanner.head(name)))
                    nodes[node].targets.append(slot)
                } else if let i = nodes[node].names.firstIndex(of: name), nodes[node].targets[i] < 0 {
                    node = -nodes[node].targets[i] - 1
                } else {
                    nodes.append(Node(path: path.prefix(depth + 1).joined(separator: ".")))
                    nodes[node].names.append(name)
                    nodes[node].keys.append((name.count, Scanner.head(name)))
                    nodes[node].targets.append(-nodes.count)
                    node = nodes.count - 1
                }
            }
        }
        self.columns = columns
        self.nodes = nodes
        rootNames = nodes[0].names
        rootKeys = nodes[0].keys
        rootTargets = nodes[0].targets
        predicted = Array(repeating: 0, count: nodes.count)
        timestampName = Array(timestamp.field.utf8)
        timestampHead = Scanner.head(timestampName)
        let declared = schema.names.firstIndex(of: timestamp.field)
        timestampIndex = declared.flatMap { columns.firstIndex(of: $0) }
        timestampInPayload = declared == nil || timestampIndex != nil
        storage = ScratchBuffer(capacity: max(1, columns.count))
        slots = storage.buffer
        unescaped = Array(repeating: [], count: columns.count)
    }

    public init(source: Source, maxBytes: Int = 1 << 20) {
        self.init(schema: source.schema, timestamp: source.timestamp, origins: source.origins, maxBytes: maxBytes)
    }

    /// Decodes one payload and appends its row to `batch` (whose columns follow `schema`), or
    /// returns why the event is rejected (and appends nothing). Columns of fields taken from the
    /// record are not appended to, and neither is the event time when it is one of them: the
    /// caller appends those.
    public mutating func decode(_ payload: UnsafeRawBufferPointer, into batch: inout ColumnBatch) -> Rejection? {
        guard payload.count <= maxBytes else {
            return Rejection(.oversized, "\(payload.count) bytes, the limit is \(maxBytes)")
        }
        guard let base = payload.baseAddress?.assumingMemoryBound(to: UInt8.self), payload.count > 0 else {
            return Rejection(.notJSON, "empty payload")
        }
        ScratchBuffer.unique(&storage)
        slots = storage.buffer
        slots.update(repeating: Slot(kind: .absent, bits: 0, start: 0, end: 0), count: columns.count)
        haveTime = false
        rootPredicted = 0
        for n in 1..<predicted.count { predicted[n] = 0 }
        var scanner = Scanner(base: base, count: payload.count)
        do throws(Rejection) {
            try parseObject(&scanner, node: 0)
            scanner.skipWhitespace()
            guard scanner.atEnd else { throw Rejection(.notJSON, "unexpected bytes after the object at byte \(scanner.position)") }
        } catch {
            return error
        }
        if timestampInPayload {
            guard haveTime else { return Rejection(.missingTimestamp, "no '\(timestamp.field)' field") }
            guard PartitionAggregator.validTimes.contains(eventTime) else {
                return Rejection(.timestampOutOfRange, "'\(timestamp.field)' is \(eventTime) µs, outside years 0001–9999")
            }
            batch.eventTimes.append(eventTime)
        }
        append(base, into: &batch)
        return nil
    }

    private func append(_ base: UnsafePointer<UInt8>, into batch: inout ColumnBatch) {
        // Through a buffer pointer: one uniqueness check of the column array per row, not per field.
        batch.columns.withUnsafeMutableBufferPointer { out in
            for (f, c) in columns.enumerated() {
                let slot = slots[f]
                switch slot.kind {
                case .absent, .null: out[c].appendNull()
                case .int:
                    let v = Int64(bitPattern: slot.bits)
                    if schema.types[c] == .float64 { out[c].append(double: Double(v)) } else { out[c].append(int: v) }
                case .double: out[c].append(double: Double(bitPattern: slot.bits))
                case .bool: out[c].append(bool: slot.bits != 0)
                case .string: out[c].append(utf8: UnsafeBufferPointer(start: base + slot.start, count: slot.end - slot.start))
                case .unescapedString: unescaped[f].withUnsafeBufferPointer { out[c].append(utf8: $0) }
                }
            }
        }
    }

    // MARK: - Parsing

    private mutating func parseObject(_ s: inout Scanner, node: Int) throws(Rejection) {
        s.skipWhitespace()
        guard s.peek == UInt8(ascii: "{") else { throw Rejection(.notJSON, "expected a JSON object at byte \(s.position)") }
        s.advance()
        s.skipWhitespace()
        if s.peek == UInt8(ascii: "}") { s.advance(); return }
        var k = 0
        while true {
            s.skipWhitespace()
            guard s.peek == UInt8(ascii: "\"") else { throw Rejection(.notJSON, "expected a field name at byte \(s.position)") }
            let target: Int?
            let isTime: Bool
            if node == 0, case let n = shapes.match(k, s), n > 0 {
                // The same bytes as the last events' key at this position: the same key.
                s.position &+= n
                target = shapes.targets[k]
                isTime = shapes.isTime[k]
            } else {
                let start = s.position
                let key = try s.string()
                let end = s.position
                s.skipWhitespace()
                guard s.peek == UInt8(ascii: ":") else { throw Rejection(.notJSON, "expected ':' at byte \(s.position)") }
                s.advance()
                let keyBytes = key.escapes ? s.unescape(key.span) : nil
                target = match(key, keyBytes, s, node: node)
                // A declared field is the timestamp only if it is the declared timestamp field; any
                // other key of the event only when the timestamp is not declared and the key names it.
                if let target { isTime = target >= 0 && target == timestampIndex } else { isTime = node == 0 && timestampInPayload && timestampIndex == nil && namesTimestamp(key, keyBytes, s) }
                if node == 0 && end &+ 1 == s.position {
                    shapes.record(k, UnsafeBufferPointer(start: s.base + start, count: s.position - start), target: target, isTime: isTime)
                }
            }
            k &+= 1
            s.skipWhitespace()
            if let target, target < 0 {
                try parseChild(&s, node: -target - 1)
            } else if let target {
                try parseValue(&s, field: target, alsoTimestamp: isTime)
            } else if isTime {
                try parseTimestamp(&s)
            } else {
                try s.skipValue(depth: 0)
            }
            s.skipWhitespace()
            guard let c = s.peek else { throw Rejection(.notJSON, "unterminated object") }
            s.advance()
            if c == UInt8(ascii: "}") { return }
            guard c == UInt8(ascii: ",") else { throw Rejection(.notJSON, "expected ',' or '}' at byte \(s.position - 1)") }
        }
    }

    /// The value of an object that declared paths go through: an object, or null (its fields are then null).
    private mutating func parseChild(_ s: inout Scanner, node: Int) throws(Rejection) {
        switch s.peek {
        case UInt8(ascii: "{"):
            try parseObject(&s, node: node)
        case UInt8(ascii: "n"):
            try s.literal("null")
        case nil:
            throw Rejection(.notJSON, "unexpected end of input")
        default:
            let start = s.position
            try s.skipValue(depth: 0)
            throw Rejection(.wrongType, "'\(nodes[node].path)' must be an object (declared fields are inside it), got \(s.text(start..<s.position))")
        }
    }

    /// Whether a key names the timestamp field.
    private func namesTimestamp(_ key: Scanner.StringToken, _ unescaped: [UInt8]?, _ s: Scanner) -> Bool {
        if let unescaped { return unescaped == timestampName }
        return key.span.count == timestampName.count && s.head(key.span) == timestampHead && s.equals(key.span, timestampName)
    }

    /// What a key of object `node` names: a slot (≥ 0), an object below (< 0), or nothing (keys
    /// with escapes are compared after unescaping).
    private mutating func match(_ key: Scanner.StringToken, _ unescaped: [UInt8]?, _ s: Scanner, node: Int) -> Int? {
        if node == 0 { return matchRoot(key, unescaped, s) }
        if let unescaped { return nodes[node].names.firstIndex(of: unescaped).map { nodes[node].targets[$0] } }
        let count = nodes[node].keys.count
        guard count > 0 else { return nil }
        let length = key.span.count
        let head = s.head(key.span)
        // Producers write fields in the same order every time: try the one after the last match.
        let guess = predicted[node] < count ? predicted[node] : 0
        if nodes[node].keys[guess].length == length && nodes[node].keys[guess].head == head && (length <= 8 || s.equals(key.span, nodes[node].names[guess])) {
            predicted[node] = guess + 1
            return nodes[node].targets[guess]
        }
        for f in 0..<count where nodes[node].keys[f].length == length && nodes[node].keys[f].head == head {
            if length <= 8 || s.equals(key.span, nodes[node].names[f]) {
                predicted[node] = f + 1
                return nodes[node].targets[f]
            }
        }
        return nil
    }

    /// `match` for the event's own fields.
    private mutating func matchRoot(_ key: Scanner.StringToken, _ unescaped: [UInt8]?, _ s: Scanner) -> Int? {
        if let unescaped { return rootNames.firstIndex(of: unescaped).map { rootTargets[$0] } }
        guard !rootKeys.isEmpty else { return nil }
        let length = key.span.count
        let head = s.head(key.span)
        let guess = rootPredicted < rootKeys.count ? rootPredicted : 0
        if rootKeys[guess].length == length && rootKeys[guess].head == head && (length <= 8 || s.equals(key.span, rootNames[guess])) {
            rootPredicted = guess + 1
            return rootTargets[guess]
        }
        for f in 0..<rootKeys.count where rootKeys[f].length == length && rootKeys[f].head == head {
            if length <= 8 || s.equals(key.span, rootNames[f]) {
                rootPredicted = f + 1
                return rootTargets[f]
            }
        }
        return nil
    }

    private mutating func parseValue(_ s: inout Scanner, field f: Int, alsoTimestamp: Bool) throws(Rejection) {
        let type = schema.types[columns[f]]
        // Only messages need the name: not read (nor retained) for good values.
        var name: String { schema.names[columns[f]] }
        guard let c = s.peek else { throw Rejection(.notJSON, "unexpected end of input") }
        let start = s.position
        switch c {
        case UInt8(ascii: "n"):
            try s.literal("null")
            slots[f].kind = .null
            if alsoTimestamp { throw Rejection(.missingTimestamp, "'\(name)' is null") }
            return
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            let value = c == UInt8(ascii: "t")
            try s.literal(value ? "true" : "false")
            guard type == .bool else { throw Rejection(.wrongType, "'\(name)' is \(type.rawValue), got \(value)") }
            slots[f] = Slot(kind: .bool, bits: value ? 1 : 0, start: 0, end: 0)
        case UInt8(ascii: "\""):
            let token = try s.string()
            guard type == .string || alsoTimestamp else { throw Rejection(.wrongType, "'\(name)' is \(type.rawValue), got a string") }
            if type == .string {
                if token.escapes {
                    unescaped[f] = s.unescape(token.span)
                    slots[f].kind = .unescapedString
                } else {
                    slots[f] = Slot(kind: .string, bits: 0, start: token.span.lowerBound, end: token.span.upperBound)
                }
            }
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let number = try s.number()
            switch type {
            case .int64:
                guard let v = number.exactInt else { throw Rejection(.wrongType, "'\(name)' is int64, got \(s.text(start..<s.position))") }
                slots[f] = Slot(kind: .int, bits: UInt64(bitPattern: v), start: 0, end: 0)
            case .float64:
                if let v = number.exactInt {
                    slots[f] = Slot(kind: .int, bits: UInt64(bitPattern: v), start: 0, end: 0)
                } else {
                    let v = s.double(number)
                    guard v.isFinite else { throw Rejection(.wrongType, "'\(name)' is out of the float64 range") }
                    slots[f] = Slot(kind: .double, bits: v.bitPattern, start: 0, end: 0)
                }
            default:
                if !alsoTimestamp { throw Rejection(.wrongType, "'\(name)' is \(type.rawValue), got a number") }
            }
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            throw Rejection(.wrongType, "'\(name)' is \(type.rawValue), got \(c == UInt8(ascii: "{") ? "an object" : "an array")")
        default:
            throw Rejection(.notJSON, "unexpected '\(Character(Unicode.Scalar(c)))' at byte \(start)")
        }
        if alsoTimestamp {
            var again = s
            again.position = start
            try parseTimestamp(&again)
        }
    }

    /// Reads the event-time value in the source's unit into `eventTime`.
    private mutating func parseTimestamp(_ s: inout Scanner) throws(Rejection) {
        let field = timestamp.field
        guard let c = s.peek else { throw Rejection(.notJSON, "unexpected end of input") }
        if c == UInt8(ascii: "n") {
            try s.literal("null")
            throw Rejection(.missingTimestamp, "'\(field)' is null")
        }
        switch timestamp.unit {
        case .rfc3339:
            guard c == UInt8(ascii: "\"") else { throw Rejection(.wrongType, "'\(field)' must be an RFC 3339 string") }
            let token = try s.string()
            let text = token.escapes ? s.unescape(token.span) : Array(UnsafeBufferPointer(start: s.base + token.span.lowerBound, count: token.span.count))
            guard let t = RFC3339.parse(text) else {
                throw Rejection(.wrongType, "'\(field)' is not an RFC 3339 timestamp: \(String(decoding: text.prefix(64), as: UTF8.self))")
            }
            eventTime = t
        case .seconds, .milliseconds, .microseconds:
            guard c == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else {
                throw Rejection(.wrongType, "'\(field)' must be a number of \(timestamp.unit.rawValue) since the epoch")
            }
            let number = try s.number()
            let scale: Int64 = timestamp.unit == .seconds ? 1_000_000 : (timestamp.unit == .milliseconds ? 1_000 : 1)
            if let v = number.exactInt {
                let (t, overflow) = v.multipliedReportingOverflow(by: scale)
                guard !overflow else { throw Rejection(.timestampOutOfRange, "'\(field)' = \(v) \(timestamp.unit.rawValue) overflows") }
                eventTime = t
            } else {
                let v = s.double(number) * Double(scale)
                guard v.isFinite, abs(v) < 9.2e18 else { throw Rejection(.timestampOutOfRange, "'\(field)' overflows") }
                eventTime = Int64(v.rounded())
            }
        }
        haveTime = true
    }
}

/// A cursor over a payload's bytes.
struct Scanner {
    let base: UnsafePointer<UInt8>
    let count: Int
    var position = 0

    var atEnd: Bool { position >= count }
    var peek: UInt8? { position < count ? base[position] : nil }
    mutating func advance() { position += 1 }

    mutating func skipWhitespace() {
        while position < count {
            let c = base[position]
            guard c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 else { return }
            position += 1
        }
    }

    func equals(_ span: Range<Int>, _ bytes: [UInt8]) -> Bool {
        guard span.count == bytes.count else { return false }
        return bytes.withUnsafeBufferPointer { b in memcmp(base + span.lowerBound, b.baseAddress!, span.count) == 0 }
    }

    /// The first eight bytes of a span, little-endian, zero-padded.
    @inline(__always)
    func head(_ span: Range<Int>) -> UInt64 {
        let n = span.count
        if span.lowerBound + 8 <= count {
            // One load, the bytes past the span masked off.
            let word = UInt64(littleEndian: UnsafeRawPointer(base + span.lowerBound).loadUnaligned(as: UInt64.self))
            return n >= 8 ? word : word & ((1 &<< UInt64(8 &* n)) &- 1)
        }
        var v: UInt64 = 0
        for k in 0..<min(n, 8) { v |= UInt64(base[span.lowerBound + k]) << UInt64(8 * k) }
        return v
    }

    static func head(_ bytes: [UInt8]) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<min(bytes.count, 8) { v |= UInt64(bytes[k]) << UInt64(8 * k) }
        return v
    }

    func text(_ span: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(start: base + span.lowerBound, count: min(span.count, 64)), as: UTF8.self)
    }

    mutating func literal(_ word: StaticString) throws(Rejection) {
        let n = word.utf8CodeUnitCount
        guard position + n <= count, memcmp(base + position, word.utf8Start, n) == 0 else {
            throw Rejection(.notJSON, "invalid literal at byte \(position)")
        }
        position += n
    }

    struct StringToken {
        /// The bytes between the quotes.
        var span: Range<Int>
        var escapes: Bool
    }

    /// Reads a string, validating escapes and UTF-8; the cursor must be on the opening quote.
    mutating func string() throws(Rejection) -> StringToken {
        let start = position + 1
        var i = start
        var escapes = false
        while true {
            // Fast path: 8 plain ASCII bytes at a time.
            while i + 8 <= count {
                let word = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                // A byte is special if ≥ 0x80, < 0x20, '"' or '\'.
                let high = word & 0x8080_8080_8080_8080
                let control = (word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080
                let q = word ^ 0x2222_2222_2222_2222
                let quote = (q &- 0x0101_0101_0101_0101) & ~q & 0x8080_8080_8080_8080
                let b = word ^ 0x5c5c_5c5c_5c5c_5c5c
                let backslash = (b &- 0x0101_0101_0101_0101) & ~b & 0x8080_8080_8080_8080
                let special = high | control | quote | backslash
                if special != 0 {
                    // Straight to the first special byte (the bytes before it are plain ASCII).
                    i += special.trailingZeroBitCount >> 3
                    break
                }
                i += 8
            }
            guard i < count else { throw Rejection(.notJSON, "unterminated string starting at byte \(start - 1)") }
            let c = base[i]
            if c == UInt8(ascii: "\"") {
                position = i + 1
                return StringToken(span: start..<i, escapes: escapes)
            } else if c == UInt8(ascii: "\\") {
                escapes = true
                guard i + 1 < count else { throw Rejection(.notJSON, "unterminated escape at byte \(i)") }
                switch base[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    guard i + 6 <= count, (2..<6).allSatisfy({ Scanner.hex(base[i + $0]) != nil }) else {
                        throw Rejection(.notJSON, "invalid \\u escape at byte \(i)")
                    }
                    let unit = (2..<6).reduce(UInt32(0)) { $0 << 4 | UInt32(Scanner.hex(base[i + $1])!) }
                    if (0xD800..<0xDC00).contains(unit) {
                        guard i + 12 <= count, base[i + 6] == UInt8(ascii: "\\"), base[i + 7] == UInt8(ascii: "u"),
                              (8..<12).allSatisfy({ Scanner.hex(base[i + $0]) != nil }) else {
                            throw Rejection(.invalidUTF8, "unpaired surrogate escape at byte \(i)")
                        }
                        let low = (8..<12).reduce(UInt32(0)) { $0 << 4 | UInt32(Scanner.hex(base[i + $1])!) }
                        guard (0xDC00..<0xE000).contains(low) else { throw Rejection(.invalidUTF8, "unpaired surrogate escape at byte \(i)") }
                        i += 12
                    } else {
                        guard !(0xDC00..<0xE000).contains(unit) else { throw Rejection(.invalidUTF8, "unpaired surrogate escape at byte \(i)") }
                        i += 6
                    }
                default:
                    throw Rejection(.notJSON, "invalid escape at byte \(i)")
                }
            } else if c < 0x20 {
                throw Rejection(.notJSON, "control character in a string at byte \(i)")
            } else if c < 0x80 {
                i += 1
            } else {
                i = try utf8Sequence(at: i)
            }
        }
    }

    /// Validates one multi-byte UTF-8 sequence starting at `i`; returns the index after it.
    private func utf8Sequence(at i: Int) throws(Rejection) -> Int {
        let c = base[i]
        func bad() -> Rejection { Rejection(.invalidUTF8, "invalid UTF-8 at byte \(i)") }
        func cont(_ k: Int) -> Bool { i + k < count && base[i + k] & 0xC0 == 0x80 }
        switch c {
        case 0xC2...0xDF:
            guard cont(1) else { throw bad() }
            return i + 2
        case 0xE0...0xEF:
            guard cont(1), cont(2) else { throw bad() }
            let c1 = base[i + 1]
            if c == 0xE0 && c1 < 0xA0 { throw bad() }     // overlong
            if c == 0xED && c1 >= 0xA0 { throw bad() }    // surrogates
            return i + 3
        case 0xF0...0xF4:
            guard cont(1), cont(2), cont(3) else { throw bad() }
            let c1 = base[i + 1]
            if c == 0xF0 && c1 < 0x90 { throw bad() }     // overlong
            if c == 0xF4 && c1 >= 0x90 { throw bad() }    // beyond U+10FFFF
            return i + 4
        default:
            throw bad()
        }
    }

    static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The bytes of a validated string token with its escapes resolved.
    func unescape(_ span: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(span.count)
        var i = span.lowerBound
        func put(_ scalar: UInt32) {
            if scalar < 0x80 { out.append(UInt8(scalar)) }
            else if scalar < 0x800 { out += [UInt8(0xC0 | scalar >> 6), UInt8(0x80 | scalar & 0x3F)] }
            else if scalar < 0x10000 { out += [UInt8(0xE0 | scalar >> 12), UInt8(0x80 | scalar >> 6 & 0x3F), UInt8(0x80 | scalar & 0x3F)] }
            else { out += [UInt8(0xF0 | scalar >> 18), UInt8(0x80 | scalar >> 12 & 0x3F), UInt8(0x80 | scalar >> 6 & 0x3F), UInt8(0x80 | scalar & 0x3F)] }
        }
        func hex4(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 << 4 | UInt32(Scanner.hex(base[at + $1])!) } }
        while i < span.upperBound {
            let c = base[i]
            guard c == UInt8(ascii: "\\") else { out.append(c); i += 1; continue }
            switch base[i + 1] {
            case UInt8(ascii: "b"): out.append(0x08); i += 2
            case UInt8(ascii: "f"): out.append(0x0C); i += 2
            case UInt8(ascii: "n"): out.append(0x0A); i += 2
            case UInt8(ascii: "r"): out.append(0x0D); i += 2
            case UInt8(ascii: "t"): out.append(0x09); i += 2
            case UInt8(ascii: "u"):
                let unit = hex4(i + 2)
                if (0xD800..<0xDC00).contains(unit) {
                    let low = hex4(i + 8)
                    put(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                    i += 12
                } else {
                    put(unit)
                    i += 6
                }
            default: out.append(base[i + 1]); i += 2
            }
        }
        return out
    }

    struct NumberToken {
        var span: Range<Int>
        /// The value when it is an integer in Int64 range (also `3.0` or `1e3`).
        var exactInt: Int64?
        /// Up to 19 significant decimal digits and their power of ten.
        var mantissa: UInt64
        var exponent: Int
        /// A non-zero digit beyond the 19th was dropped.
        var truncated: Bool
        var negative: Bool
    }

    /// Reads a JSON number (RFC 8259 grammar).
    mutating func number() throws(Rejection) -> NumberToken {
        if let token = shortNumber() { return token }
        let start = position
        var i = position
        var negative = false
        if base[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        var mantissa: UInt64 = 0
        var significant = 0, exponent = 0
        var truncated = false
        func isDigit(_ k: Int) -> Bool { k < count && base[k] >= 0x30 && base[k] <= 0x39 }
        guard isDigit(i) else { throw Rejection(.notJSON, "invalid number at byte \(start)") }
        if base[i] == UInt8(ascii: "0") && isDigit(i + 1) { throw Rejection(.notJSON, "leading zero in a number at byte \(start)") }
        // Eight digits at a time while they fit the 19 kept (ids, epoch timestamps); the integer
        // part has no leading zero, so every digit of it is significant.
        while significant <= 11 && i + 8 <= count, let eight = Scanner.eightDigits(base + i) {
            mantissa = mantissa &* 100_000_000 &+ eight
            significant += mantissa == 0 ? 0 : 8
            i += 8
        }
        while isDigit(i) {
            let d = base[i] &- 0x30
            if significant < 19 {
                mantissa = mantissa &* 10 &+ UInt64(d)
                if mantissa != 0 { significant += 1 }
            } else {
                exponent += 1
                if d != 0 { truncated = true }
            }
            i += 1
        }
        if i < count && base[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(i) else { throw Rejection(.notJSON, "invalid number at byte \(start)") }
            while isDigit(i) {
                let d = base[i] &- 0x30
                if significant < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(d)
                    exponent -= 1
                    if mantissa != 0 { significant += 1 }
                } else if d != 0 {
                    truncated = true
                }
                i += 1
            }
        }
        if i < count && (base[i] == UInt8(ascii: "e") || base[i] == UInt8(ascii: "E")) {
            i += 1
            var sign = 1
            if i < count && (base[i] == UInt8(ascii: "+") || base[i] == UInt8(ascii: "-")) {
                if base[i] == UInt8(ascii: "-") { sign = -1 }
                i += 1
            }
            guard isDigit(i) else { throw Rejection(.notJSON, "invalid exponent at byte \(start)") }
            var e = 0
            while isDigit(i) {
                if e < 100_000 { e = e * 10 + Int(base[i] - 0x30) }
                i += 1
            }
            exponent += sign * e
        }
        position = i
        var exactInt: Int64?
        if !truncated {
            var v = mantissa, e = exponent, ok = true
            while e < 0 && ok {
                if v % 10 != 0 { ok = false } else { v /= 10; e += 1 }
            }
            while e > 0 && ok && v != 0 {
                let (m, o) = v.multipliedReportingOverflow(by: 10)
                if o { ok = false } else { v = m; e -= 1 }
            }
            if ok {
                if negative && v <= UInt64(Int64.max) + 1 { exactInt = v == UInt64(Int64.max) + 1 ? .min : -Int64(v) }
                else if !negative && v <= UInt64(Int64.max) { exactInt = Int64(v) }
            }
        }
        return NumberToken(span: start..<i, exactInt: exactInt, mantissa: mantissa, exponent: exponent,
                           truncated: truncated, negative: negative)
    }

    /// The common numbers, in one pass: at most 17 digits in all, an optional fraction, no
    /// exponent (ids, counts, epoch timestamps, amounts). Anything else — a leading zero, an
    /// exponent, more digits, a malformed number — is left to `number`'s general path (nil).
    @inline(__always)
    private mutating func shortNumber() -> NumberToken? {
        let start = position
        var i = position
        let negative = i < count && base[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let first = i
        var v: UInt64 = 0
        while i < count, case let d = base[i] &- 0x30, d < 10 {
            v = v &* 10 &+ UInt64(d)
            i += 1
        }
        let integerDigits = i - first
        guard integerDigits > 0, integerDigits < 18, integerDigits == 1 || base[first] != UInt8(ascii: "0") else { return nil }
        let integer = v
        var exponent = 0
        var zeroFraction = true
        if i < count && base[i] == UInt8(ascii: ".") {
            i += 1
            let fraction = i
            while i < count, case let d = base[i] &- 0x30, d < 10 {
                v = v &* 10 &+ UInt64(d)
                if d != 0 { zeroFraction = false }
                i += 1
            }
            exponent = fraction - i
            guard exponent < 0, integerDigits - exponent < 18 else { return nil }
        }
        if i < count && (base[i] == UInt8(ascii: "e") || base[i] == UInt8(ascii: "E")) { return nil }
        position = i
        let exact: Int64? = zeroFraction ? (negative ? -Int64(integer) : Int64(integer)) : nil
        return NumberToken(span: start..<i, exactInt: exact, mantissa: v, exponent: exponent, truncated: false, negative: negative)
    }

    /// The value of eight ASCII digits at `p` (the first the most significant), or nil when one
    /// of the bytes is not a digit: SWAR, three multiplications instead of eight steps.
    @inline(__always)
    static func eightDigits(_ p: UnsafePointer<UInt8>) -> UInt64? {
        let v = UInt64(littleEndian: UnsafeRawPointer(p).loadUnaligned(as: UInt64.self))
        // Every byte in 0x30…0x39: its high nibble is 3, and adding 6 does not carry into it.
        guard v & 0xF0F0_F0F0_F0F0_F0F0 == 0x3030_3030_3030_3030,
              (v &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0 == 0x3030_3030_3030_3030 else { return nil }
        var x = v & 0x0F0F_0F0F_0F0F_0F0F
        x = (x &* 2561) >> 8
        x = ((x & 0x00FF_00FF_00FF_00FF) &* 6_553_601) >> 16
        return ((x & 0x0000_FFFF_0000_FFFF) &* 42_949_672_960_001) >> 32
    }

    static let powersOfTen: [Double] = (0...22).map { e in (0..<e).reduce(1.0) { r, _ in r * 10 } }

    /// The correctly rounded double of a number token: exact fast path when the significand fits
    /// in 53 bits and the power of ten is exact (Clinger), else the C library's strtod.
    func double(_ n: NumberToken) -> Double {
        if !n.truncated && n.mantissa < (1 << 53) && abs(n.exponent) <= 22 {
            var v = Double(n.mantissa)
            v = n.exponent < 0 ? v / Scanner.powersOfTen[-n.exponent] : v * Scanner.powersOfTen[n.exponent]
            return n.negative ? -v : v
        }
        var buffer = [CChar](repeating: 0, count: n.span.count + 1)
        for k in 0..<n.span.count { buffer[k] = CChar(bitPattern: base[n.span.lowerBound + k]) }
        return strtod(buffer, nil)
    }

    /// Skips any JSON value (for undeclared fields), validating it.
    mutating func skipValue(depth: Int) throws(Rejection) {
        guard depth < 128 else { throw Rejection(.notJSON, "nesting deeper than 128 at byte \(position)") }
        guard let c = peek else { throw Rejection(.notJSON, "unexpected end of input") }
        switch c {
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try number()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let object = c == UInt8(ascii: "{")
            let close = object ? UInt8(ascii: "}") : UInt8(ascii: "]")
            advance()
            skipWhitespace()
            if peek == close { advance(); return }
            while true {
                skipWhitespace()
                if object {
                    guard peek == UInt8(ascii: "\"") else { throw Rejection(.notJSON, "expected a field name at byte \(position)") }
                    _ = try string()
                    skipWhitespace()
                    guard peek == UInt8(ascii: ":") else { throw Rejection(.notJSON, "expected ':' at byte \(position)") }
                    advance()
                    skipWhitespace()
                }
                try skipValue(depth: depth + 1)
                skipWhitespace()
                guard let d = peek else { throw Rejection(.notJSON, "unterminated \(object ? "object" : "array")") }
                advance()
                if d == close { return }
                guard d == UInt8(ascii: ",") else { throw Rejection(.notJSON, "expected ',' at byte \(position - 1)") }
            }
        default:
            throw Rejection(.notJSON, "unexpected byte 0x\(String(c, radix: 16)) at byte \(position)")
        }
    }
}
