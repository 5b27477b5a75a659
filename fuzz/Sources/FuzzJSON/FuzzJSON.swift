import Foundation
import FuzzSupport
import TesseraCore
import TesseraSource
import TesseraTopology

// libFuzzer target: every input is one Kafka payload, decoded by several decoders whose schemas
// cover each value type and time unit. Besides "never crashes, never hangs", each decode must
// keep these properties (a violation stops the run with the input saved as a reproducer):
//
// - it appends exactly one row, or returns a rejection and appends nothing (every column too);
// - a long-lived decoder (scratch state carried over from earlier payloads, as in the worker)
//   and a fresh copy agree on the outcome and on every value of the row;
// - an accepted row has its event time inside years 0001–9999 and only valid UTF-8 strings;
// - an accepted payload is a valid JSON object (RFC 8259, checked by `StrictJSON` below), and a
//   payload rejected as not JSON or invalid UTF-8 is not one (or nests deeper than the decoder's
//   limit of 128);
// - an accepted payload that Foundation's JSONSerialization also reads gives the same values:
//   every declared field, and the event time when it is a number.
//
// Foundation is no oracle for validity: it accepts trailing commas, byte-order marks, UTF-16 and
// nesting up to 512, and refuses numbers beyond the range of Double, all of which the decoder
// handles per RFC 8259 and its documented limits.

/// One decoder under test, with the batch it keeps appending to.
struct Subject {
    let name: String
    /// Never decodes: copied for each payload as the fresh decoder.
    let template: JSONEventDecoder
    var decoder: JSONEventDecoder
    var batch: ColumnBatch

    init(_ name: String, _ decoder: JSONEventDecoder) {
        self.name = name
        template = decoder
        self.decoder = decoder
        batch = ColumnBatch(schema: decoder.schema.types)
    }
}

/// The repository's root, from this file's place in it (fuzz/Sources/FuzzJSON/).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

func shippedSource(_ file: String, _ name: String) -> Source {
    let path = root.appendingPathComponent("topologies/\(file)").path
    do {
        let topologies = try TopologyLoader.load(files: [path])
        guard let source = topologies.first?.source(named: name) else { fatalError("\(path) has no source '\(name)'") }
        return source
    } catch {
        fatalError("cannot load \(path): \(error)")
    }
}

func makeSubjects() -> [Subject] {
    [
        // The reference orders: int64, float64 and string fields, ms timestamps not declared as a field.
        Subject("growth/orders", JSONEventDecoder(source: shippedSource("growth.yaml", "orders"), maxBytes: 1 << 16)),
        // String keys, a bool, RFC 3339 timestamps.
        Subject("risk/payments", JSONEventDecoder(source: shippedSource("risk.yaml", "payments"), maxBytes: 1 << 16)),
        // Every type; the timestamp is also a declared float64 field, in seconds; names longer than
        // eight bytes that share their first eight; a small size limit.
        Subject("all-types/s", JSONEventDecoder(
            schema: Schema([("id", .int64), ("score", .float64), ("label", .string), ("flag", .bool), ("ts", .float64),
                            ("customer_id", .int64), ("customer_name", .string)]),
            timestamp: TimeField(field: "ts", unit: .seconds), maxBytes: 512)),
        // An RFC 3339 timestamp that is also a declared string field.
        Subject("string-time/rfc3339", JSONEventDecoder(
            schema: Schema([("when", .string), ("user", .string), ("n", .int64)]),
            timestamp: TimeField(field: "when", unit: .rfc3339), maxBytes: 1 << 16)),
        // No declared fields at all: only the timestamp, in microseconds.
        Subject("empty/us", JSONEventDecoder(schema: Schema([]), timestamp: TimeField(field: "t", unit: .microseconds), maxBytes: 1 << 16)),
    ]
}

// libFuzzer runs one input at a time, on one thread: nothing else touches the decoders.
nonisolated(unsafe) var subjects = makeSubjects()

func fail(_ subject: Subject, _ message: String) -> Never {
    fatalError("\(subject.name): \(message)")
}

func row(_ batch: ColumnBatch, _ i: Int) -> [Value?] {
    batch.columns.map { $0.value(at: i) }
}

func check(_ subject: inout Subject, _ payload: UnsafeRawBufferPointer, strict: StrictJSON.Verdict, foundation: () -> [String: Any]?) {
    if subject.batch.count >= 4_096 { subject.batch.removeAll() }
    let before = subject.batch.count
    let rejection = subject.decoder.decode(payload, into: &subject.batch)
    let after = subject.batch.count
    guard after == before + (rejection == nil ? 1 : 0) else {
        fail(subject, "batch went from \(before) to \(after) rows, rejection: \(String(describing: rejection))")
    }
    for (f, column) in subject.batch.columns.enumerated() where column.count != after {
        fail(subject, "column \(f) has \(column.count) values, the batch \(after) rows")
    }

    var fresh = subject.template
    var freshBatch = ColumnBatch(schema: fresh.schema.types)
    let freshRejection = fresh.decode(payload, into: &freshBatch)
    guard freshRejection == rejection else {
        fail(subject, "a fresh decoder says \(String(describing: freshRejection)), the long-lived one \(String(describing: rejection))")
    }

    if let rejection {
        if payload.count > subject.decoder.maxBytes {
            guard rejection.reason == .oversized else { fail(subject, "\(payload.count) bytes rejected as \(rejection)") }
        } else if rejection.reason == .notJSON || rejection.reason == .invalidUTF8 {
            let tooDeep = rejection.detail.hasPrefix("nesting deeper than") && strict.depth > 128
            guard !strict.isObject || tooDeep else { fail(subject, "rejected as \(rejection), but it is a valid JSON object") }
        }
        return
    }
    guard freshBatch.count == 1, freshBatch.eventTimes[0] == subject.batch.eventTimes[before],
          row(freshBatch, 0) == row(subject.batch, before) else {
        fail(subject, "a fresh decoder reads \(freshBatch.eventTimes) \(row(freshBatch, 0)), the long-lived one "
             + "\(subject.batch.eventTimes[before]) \(row(subject.batch, before))")
    }
    let time = subject.batch.eventTimes[before]
    guard PartitionAggregator.validTimes.contains(time) else { fail(subject, "accepted an event time of \(time) µs") }
    for (f, column) in subject.batch.columns.enumerated() where column.type == .string && column.value(at: before) != nil {
        let valid = column.withUTF8(at: before) { String(validating: $0, as: UTF8.self) != nil }
        guard valid else { fail(subject, "field \(subject.decoder.schema.names[f]) holds invalid UTF-8") }
    }
    guard strict.isObject else { fail(subject, "accepted a payload that is not a valid JSON object") }
    if let object = foundation() { compare(subject, row(subject.batch, before), time: time, with: object) }
}

/// The decoded row against Foundation's reading of the same payload.
func compare(_ subject: Subject, _ row: [Value?], time: Micros, with object: [String: Any]) {
    let schema = subject.decoder.schema
    for (f, name) in schema.names.enumerated() {
        let expected = object[name]
        let decoded = row[f]
        func mismatch() -> Never {
            fail(subject, "field \(name) decodes to \(String(describing: decoded)), Foundation reads \(String(describing: expected))")
        }
        guard let expected, !(expected is NSNull) else {
            if decoded != nil { mismatch() }
            continue
        }
        switch (schema.types[f], decoded) {
        case (.string, .string(let s)?):
            guard let e = expected as? String, e == s else { mismatch() }
        case (.bool, .bool(let b)?):
            guard let e = expected as? Bool, e == b else { mismatch() }
        case (.int64, .int(let v)?):
            guard let e = expected as? NSNumber, !isBoolean(e), e.doubleValue == Double(v) else { mismatch() }
        case (.float64, .double(let v)?):
            guard let e = expected as? NSNumber, !isBoolean(e), same(e, v) else { mismatch() }
        default:
            mismatch()
        }
    }
    let unit = subject.decoder.timestamp.unit
    if unit != .rfc3339, let t = object[subject.decoder.timestamp.field] as? NSNumber, !isBoolean(t) {
        let scale = unit == .seconds ? 1e6 : (unit == .milliseconds ? 1e3 : 1)
        let expected = (t.doubleValue * scale).rounded()
        // Beyond 2^53 Foundation's double is no longer the exact integer the decoder reads.
        if abs(expected) < 9.0e15 && !(t is NSDecimalNumber) && Double(time) != expected {
            fail(subject, "event time \(time) µs, Foundation reads \(t) \(unit.rawValue)")
        }
    }
}

/// Foundation's `true` and `false` (an NSNumber 0 or 1 also casts to Bool, so ask its type).
func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

/// Doubles equal; Foundation reads numbers of more than 19 digits as decimals whose conversion to
/// Double may be off by an ulp, where the decoder rounds correctly (strtod).
func same(_ foundation: NSNumber, _ decoded: Double) -> Bool {
    let e = foundation.doubleValue
    if e == decoded { return true }
    return foundation is NSDecimalNumber && abs(e - decoded) <= abs(decoded) * 1e-15
}

/// An independent, deliberately plain validator of RFC 8259 JSON texts whose top level is an
/// object, with the decoder's one extra rule: a \\u escape of an unpaired surrogate is invalid.
/// Also reports the deepest nesting of arrays and objects (the top-level object is depth 1).
enum StrictJSON {
    struct Verdict {
        var isObject: Bool
        var depth: Int
    }

    static func check(_ bytes: UnsafeRawBufferPointer) -> Verdict {
        guard String(validating: bytes, as: UTF8.self) != nil else { return Verdict(isObject: false, depth: 0) }
        var p = Parser(bytes: bytes)
        p.space()
        guard p.peek == UInt8(ascii: "{"), p.value(depth: 1) else { return Verdict(isObject: false, depth: p.deepest) }
        p.space()
        return Verdict(isObject: p.i == bytes.count, depth: p.deepest)
    }

    struct Parser {
        let bytes: UnsafeRawBufferPointer
        var i = 0
        var deepest = 0

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func space() {
            while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
        }

        mutating func eat(_ c: UInt8) -> Bool {
            guard peek == c else { return false }
            i += 1
            return true
        }

        mutating func word(_ w: String) -> Bool {
            for c in w.utf8 { guard eat(c) else { return false } }
            return true
        }

        mutating func value(depth: Int) -> Bool {
            deepest = max(deepest, depth)
            guard let c = peek else { return false }
            switch c {
            case UInt8(ascii: "{"):
                i += 1
                space()
                if eat(UInt8(ascii: "}")) { return true }
                while true {
                    space()
                    guard peek == UInt8(ascii: "\""), string() else { return false }
                    space()
                    guard eat(UInt8(ascii: ":")) else { return false }
                    space()
                    guard value(depth: depth + 1) else { return false }
                    space()
                    if eat(UInt8(ascii: "}")) { return true }
                    guard eat(UInt8(ascii: ",")) else { return false }
                }
            case UInt8(ascii: "["):
                i += 1
                space()
                if eat(UInt8(ascii: "]")) { return true }
                while true {
                    space()
                    guard value(depth: depth + 1) else { return false }
                    space()
                    if eat(UInt8(ascii: "]")) { return true }
                    guard eat(UInt8(ascii: ",")) else { return false }
                }
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return word("true")
            case UInt8(ascii: "f"): return word("false")
            case UInt8(ascii: "n"): return word("null")
            default: return number()
            }
        }

        mutating func digits() -> Int {
            var n = 0
            while let c = peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { i += 1; n += 1 }
            return n
        }

        /// -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
        mutating func number() -> Bool {
            _ = eat(UInt8(ascii: "-"))
            if eat(UInt8(ascii: "0")) {
                // A leading zero stands alone.
            } else {
                guard let c = peek, c >= UInt8(ascii: "1"), c <= UInt8(ascii: "9") else { return false }
                _ = digits()
            }
            if eat(UInt8(ascii: ".")) { guard digits() > 0 else { return false } }
            if eat(UInt8(ascii: "e")) || eat(UInt8(ascii: "E")) {
                if !eat(UInt8(ascii: "+")) { _ = eat(UInt8(ascii: "-")) }
                guard digits() > 0 else { return false }
            }
            return true
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
                default: return nil
                }
                v = v << 4 | UInt32(d)
                i += 1
            }
            return v
        }

        /// A string; the cursor is on its opening quote. UTF-8 was checked for the whole text.
        mutating func string() -> Bool {
            i += 1
            while let c = peek {
                i += 1
                switch c {
                case UInt8(ascii: "\""): return true
                case UInt8(ascii: "\\"):
                    guard let e = peek else { return false }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        continue
                    case UInt8(ascii: "u"):
                        guard let unit = hex4() else { return false }
                        if unit >= 0xDC00 && unit < 0xE000 { return false }
                        if unit >= 0xD800 && unit < 0xDC00 {
                            guard eat(UInt8(ascii: "\\")), eat(UInt8(ascii: "u")), let low = hex4(), low >= 0xDC00, low < 0xE000 else { return false }
                        }
                    default:
                        return false
                    }
                default:
                    if c < 0x20 { return false }
                }
            }
            return false
        }
    }
}

/// Runs once before fuzzing; `--write-seeds DIR DICT` writes the seeds and dictionary instead.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    writeSeedsIfAsked(seeds: jsonSeeds, dictionary: jsonDictionary)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let payload = UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size)
    let strict = StrictJSON.check(payload)
    // Foundation's reading, computed at most once per payload and only for an accepted one.
    var foundation: [String: Any]??
    func read() -> [String: Any]? {
        if let foundation { return foundation }
        let object = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]
        foundation = .some(object)
        return object
    }
    for i in subjects.indices {
        check(&subjects[i], payload, strict: strict, foundation: read)
    }
    return 0
}
