import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
import TesseraSource
import TesseraTopology
import TesseraWorkload

/// A decoder for the reference orders, plus a bool field to cover every type.
func referenceDecoder(unit: TimeUnit = .milliseconds) -> JSONEventDecoder {
    var fields = (0..<ReferenceWorkload.schema.names.count).map { (ReferenceWorkload.schema.names[$0], ReferenceWorkload.schema.types[$0]) }
    fields.append(("gift", .bool))
    return JSONEventDecoder(schema: Schema(fields), timestamp: TimeField(field: "event_timestamp", unit: unit), maxBytes: 4096)
}

func decode(_ decoder: inout JSONEventDecoder, _ text: String, into batch: inout ColumnBatch) -> Rejection? {
    var bytes = Array(text.utf8)
    return decode(&decoder, &bytes, into: &batch)
}

func decode(_ decoder: inout JSONEventDecoder, _ bytes: inout [UInt8], into batch: inout ColumnBatch) -> Rejection? {
    bytes.withUnsafeBytes { decoder.decode($0, into: &batch) }
}

@Suite("JSON event decoder")
struct JSONEventDecoderTests {
    @Test("reference events decode to the generator's values")
    func reference() {
        var decoder = referenceDecoder()
        var batch = ColumnBatch(schema: decoder.schema.types)
        let workload = ReferenceWorkload(.init(events: 5_000, users: 100, skew: 1.1, span: Time.day, disorder: 0))
        var json: [UInt8] = []
        for i in 0..<5_000 {
            json.removeAll(keepingCapacity: true)
            ReferenceWorkload.json(workload.order(i), into: &json)
            #expect(decode(&decoder, &json, into: &batch) == nil)
        }
        for i in 0..<5_000 {
            let o = workload.order(i)
            #expect(batch.eventTimes[i] == o.eventTimeMillis * 1_000)
            #expect(batch.columns[0].value(at: i) == .int(o.orderID))
            #expect(batch.columns[1].value(at: i) == .int(o.userID))
            #expect(batch.columns[2].value(at: i) == .int(o.productID))
            #expect(batch.columns[3].value(at: i) == .double(o.amount))
            #expect(batch.columns[4].value(at: i) == .string(o.status.rawValue))
            #expect(batch.columns[5].value(at: i) == nil)
        }
        // Amounts of any sign are written as the generator holds them (the generator's own are
        // positive; the function is public).
        batch = ColumnBatch(schema: decoder.schema.types)
        let cents: [Int64] = [0, 1, 99, 100, -1, -99, -100, -12_345, Int64(Int32.min)]
        var order = workload.order(0)
        for c in cents {
            order.amountCents = c
            json.removeAll(keepingCapacity: true)
            ReferenceWorkload.json(order, into: &json)
            #expect(decode(&decoder, &json, into: &batch) == nil)
        }
        #expect((0..<cents.count).map { batch.columns[3].value(at: $0) } == cents.map { .double(Double($0) / 100) })
    }

    @Test("nulls, absent and undeclared fields, escapes, numbers in every form")
    func values() throws {
        var decoder = referenceDecoder()
        var batch = ColumnBatch(schema: decoder.schema.types)
        let doc = #"""
         { "extra": {"a": [1, 2, {"b": null}], "c": "\"}"}, "user_id" : 7, "amount": 1.25e2, "status": "p\u00e9\ud83d\ude00\n\"x\"/",
           "order_id": null, "gift": true, "event_timestamp": 1767225600123, "product_id": -0, "more": [] }
        """#
        #expect(decode(&decoder, doc, into: &batch) == nil)
        #expect(batch.columns[0].value(at: 0) == nil)
        #expect(batch.columns[1].value(at: 0) == .int(7))
        #expect(batch.columns[2].value(at: 0) == .int(0))
        #expect(batch.columns[3].value(at: 0) == .double(125))
        #expect(batch.columns[4].value(at: 0) == .string("pé😀\n\"x\"/"))
        #expect(batch.columns[5].value(at: 0) == .bool(true))
        // Integral numbers are accepted for int64 fields in any notation; the last duplicate wins.
        #expect(decode(&decoder, #"{"event_timestamp": 5, "user_id": 1.0e3, "order_id": 3.000, "amount": 4, "amount": 2}"#, into: &batch) == nil)
        #expect(batch.columns[1].value(at: 1) == .int(1_000))
        #expect(batch.columns[0].value(at: 1) == .int(3))
        #expect(batch.columns[3].value(at: 1) == .double(2))
        #expect(batch.eventTimes[1] == 5_000)
    }

    static let bad: [(String, DeadLetterReason)] = [
        ("", .notJSON), ("hello", .notJSON), ("[1, 2]", .notJSON), (#"{"user_id": 1"#, .notJSON), ("{} {}", .notJSON),
        (#"{"event_timestamp": 1, "user_id": 01}"#, .notJSON), (#"{"event_timestamp": 1, "x": tru}"#, .notJSON),
        (#"{"event_timestamp": 1, "status": "a\x"}"#, .notJSON), ("{\"event_timestamp\": 1, \"status\": \"a\u{01}\"}", .notJSON),
        (#"{"event_timestamp": 1 "user_id": 2}"#, .notJSON), (#"{"event_timestamp": 1,}"#, .notJSON),
        (#"{"event_timestamp": 1, "user_id": "7"}"#, .wrongType), (#"{"event_timestamp": 1, "user_id": 1.5}"#, .wrongType),
        (#"{"event_timestamp": 1, "amount": "3"}"#, .wrongType), (#"{"event_timestamp": 1, "status": 3}"#, .wrongType),
        (#"{"event_timestamp": 1, "gift": 1}"#, .wrongType), (#"{"event_timestamp": 1, "user_id": {"id": 1}}"#, .wrongType),
        (#"{"event_timestamp": 1, "user_id": 99999999999999999999}"#, .wrongType), (#"{"event_timestamp": 1, "amount": 1e999}"#, .wrongType),
        (#"{"user_id": 1}"#, .missingTimestamp), (#"{"event_timestamp": null}"#, .missingTimestamp),
        (#"{"event_timestamp": "2026-01-01"}"#, .wrongType),
        (#"{"event_timestamp": 999999999999999999}"#, .timestampOutOfRange), (#"{"event_timestamp": -99999999999999999}"#, .timestampOutOfRange),
        (#"{"event_timestamp": 1, "status": "\ud83d"}"#, .invalidUTF8), (#"{"event_timestamp": 1, "status": "\udc00x"}"#, .invalidUTF8),
    ]

    @Test("every kind of malformed event is rejected with its reason and leaves the batch untouched", arguments: 0..<bad.count)
    func malformed(_ index: Int) {
        let (text, reason) = Self.bad[index]
        var decoder = referenceDecoder()
        var batch = ColumnBatch(schema: decoder.schema.types)
        let rejection = decode(&decoder, text, into: &batch)
        #expect(rejection?.reason == reason, "\(text) → \(String(describing: rejection))")
        #expect(batch.count == 0 && batch.columns.allSatisfy { $0.count == 0 })
    }

    @Test("invalid UTF-8 bytes and oversized payloads")
    func bytes() {
        var decoder = referenceDecoder()
        var batch = ColumnBatch(schema: decoder.schema.types)
        for invalid: [UInt8] in [[0xFF], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3]] {
            var doc = Array(#"{"event_timestamp": 1, "status": "a"#.utf8) + invalid + Array(#"b"}"#.utf8)
            #expect(decode(&decoder, &doc, into: &batch)?.reason == .invalidUTF8, "\(invalid)")
            var key = Array(#"{"event_timestamp": 1, ""#.utf8) + invalid + Array(#"": 1}"#.utf8)
            #expect(decode(&decoder, &key, into: &batch)?.reason == .invalidUTF8, "\(invalid) in a key")
        }
        var big = Array(#"{"event_timestamp": 1, "status": ""#.utf8) + Array(repeating: UInt8(ascii: "a"), count: 5_000) + Array(#""}"#.utf8)
        #expect(decode(&decoder, &big, into: &batch)?.reason == .oversized)
        #expect(batch.count == 0)
    }

    @Test("timestamps in seconds, milliseconds, microseconds and RFC 3339")
    func units() {
        let cases: [(TimeUnit, String, Micros)] = [
            (.seconds, "1767225600", 1_767_225_600_000_000), (.seconds, "1767225600.25", 1_767_225_600_250_000),
            (.milliseconds, "1767225600123", 1_767_225_600_123_000), (.microseconds, "1767225600123456", 1_767_225_600_123_456),
            (.rfc3339, #""2026-01-01T00:00:00Z""#, 1_767_225_600_000_000),
            (.rfc3339, #""2026-01-01T01:30:00.5+01:30""#, 1_767_225_600_500_000),
            (.rfc3339, #""1969-12-31t23:59:59.999999z""#, -1),
            (.rfc3339, #""2024-02-29 12:00:00-00:00""#, 1_709_208_000_000_000),
        ]
        for (unit, value, expected) in cases {
            var decoder = referenceDecoder(unit: unit)
            var batch = ColumnBatch(schema: decoder.schema.types)
            let r = decode(&decoder, #"{"event_timestamp": \#(value)}"#, into: &batch)
            #expect(r == nil && batch.eventTimes.first == expected, "\(unit) \(value): \(String(describing: r)) \(batch.eventTimes)")
        }
        var decoder = referenceDecoder(unit: .rfc3339)
        var batch = ColumnBatch(schema: decoder.schema.types)
        for invalid in ["2026-02-30T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00", "2026-1-01T00:00:00Z", "2026-01-01T00:00:00.Z"] {
            #expect(decode(&decoder, #"{"event_timestamp": "\#(invalid)"}"#, into: &batch)?.reason == .wrongType, "\(invalid)")
        }
    }

    @Test("RFC 3339 agrees with Foundation's ISO 8601 parser on random instants")
    func rfc3339() {
        var g = SystemRandomNumberGenerator()
        let formatter = ISO8601DateFormatter()
        for _ in 0..<2_000 {
            // From 1590 on: Foundation switches to the Julian calendar before the Gregorian reform of
            // 1582, where RFC 3339 stays proleptic Gregorian.
            let seconds = Int64.random(in: -12_000_000_000...200_000_000_000, using: &g)
            let text = formatter.string(from: Date(timeIntervalSince1970: Double(seconds)))
            #expect(RFC3339.parse(Array(text.utf8)) == seconds * 1_000_000, "\(text)")
        }
    }

    @Test("numbers of every length around the one-pass path's bounds read as Swift reads their text", arguments: 0..<4)
    func numberLengths(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed))
        var decoder = referenceDecoder()
        for _ in 0..<2_000 {
            // 1-19 integer digits, no fraction or 1-6 fraction digits (sometimes all zeros), either sign.
            let digits = Int.random(in: 1...19, using: &g)
            var integer = String(Int.random(in: 1...9, using: &g))
            for _ in 1..<digits { integer += String(Int.random(in: 0...9, using: &g)) }
            if Int.random(in: 0..<8, using: &g) == 0 { integer = "0" }
            let fraction = Bool.random(using: &g) ? ""
                : "." + (0..<Int.random(in: 1...6, using: &g)).map { _ in Bool.random(using: &g) ? "0" : String(Int.random(in: 0...9, using: &g)) }.joined()
            let text = (Bool.random(using: &g) ? "-" : "") + integer + fraction
            var batch = ColumnBatch(schema: decoder.schema.types)
            let r = decode(&decoder, #"{"event_timestamp": 1, "amount": \#(text), "order_id": \#(text)}"#, into: &batch)
            let exact = fraction.allSatisfy { $0 == "." || $0 == "0" } ? Int64(text.split(separator: ".")[0]) : nil
            guard let exact else {
                #expect(r?.reason == .wrongType, "\(text)")
                continue
            }
            #expect(r == nil, "\(text)")
            #expect(batch.columns[0].value(at: 0) == .int(exact), "\(text)")
            #expect(batch.columns[3].value(at: 0) == .double(Double(exact)), "\(text)")
        }
        // Non-integral ones, as a float64 field alone.
        for _ in 0..<2_000 {
            let text = (Bool.random(using: &g) ? "-" : "") + String(Int.random(in: 0...99_999_999, using: &g)) + "."
                + String(format: "%0\(Int.random(in: 1...9, using: &g))d", Int.random(in: 0...999_999_999, using: &g) % 1_000_000_000)
            var batch = ColumnBatch(schema: decoder.schema.types)
            #expect(decode(&decoder, #"{"event_timestamp": 1, "amount": \#(text)}"#, into: &batch) == nil, "\(text)")
            #expect(batch.columns[3].value(at: 0) == .double(Double(text)!), "\(text)")
        }
    }

    @Test("random valid documents decode like Foundation's JSONSerialization reads them", arguments: 0..<20)
    func differential(seed: Int) throws {
        var g = SeededGenerator(seed: UInt64(seed))
        var decoder = referenceDecoder()
        for _ in 0..<200 {
            var batch = ColumnBatch(schema: decoder.schema.types)
            let text = RandomJSON.document(&g)
            let r = decode(&decoder, text, into: &batch)
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            #expect(r == nil, "\(text): \(String(describing: r))")
            guard r == nil else { continue }
            #expect(batch.eventTimes[0] == (object["event_timestamp"] as! NSNumber).int64Value * 1_000)
            if let amount = object["amount"] as? NSNumber { #expect(batch.columns[3].value(at: 0) == .double(amount.doubleValue), "\(text)") }
            else { #expect(batch.columns[3].value(at: 0) == nil) }
            if let status = object["status"] as? String { #expect(batch.columns[4].value(at: 0) == .string(status), "\(text)") }
            else { #expect(batch.columns[4].value(at: 0) == nil) }
            if let user = object["user_id"] as? NSNumber { #expect(batch.columns[1].value(at: 0) == .int(user.int64Value)) }
        }
    }

    @Test("mutated documents never crash: accepted or rejected, nothing in between", arguments: 0..<10)
    func mutations(seed: Int) {
        var g = SeededGenerator(seed: UInt64(seed) &+ 1_000)
        var decoder = referenceDecoder()
        var batch = ColumnBatch(schema: decoder.schema.types)
        for _ in 0..<2_000 {
            var bytes = Array(RandomJSON.document(&g).utf8)
            for _ in 0..<Int.random(in: 1...4, using: &g) {
                let i = Int.random(in: 0..<bytes.count, using: &g)
                switch Int.random(in: 0..<3, using: &g) {
                case 0: bytes[i] = UInt8.random(in: 0...255, using: &g)
                case 1: bytes.remove(at: i)
                default: bytes.insert(UInt8.random(in: 0...255, using: &g), at: i)
                }
                if bytes.isEmpty { bytes = [0x20] }
            }
            let before = batch.count
            let r = decode(&decoder, &bytes, into: &batch)
            #expect(batch.count == before + (r == nil ? 1 : 0))
            #expect(batch.columns.allSatisfy { $0.count == batch.count })
        }
    }
}


/// Random valid event documents: fields in any order, whitespace, undeclared nested values,
/// escapes and numbers in varied notations.
enum RandomJSON {
    static func ws(_ g: inout SeededGenerator) -> String { ["", " ", "\n  ", "\t"].randomElement(using: &g)! }

    static func string(_ g: inout SeededGenerator) -> String {
        var s = "\""
        for _ in 0..<Int.random(in: 0...12, using: &g) {
            switch Int.random(in: 0..<10, using: &g) {
            case 0: s += "\\\""
            case 1: s += "\\\\"
            case 2: s += "\\u00e9"
            case 3: s += "\\ud83d\\ude00"
            case 4: s += "é"
            case 5: s += "\\n"
            default: s += String(UnicodeScalar(UInt8.random(in: 0x61...0x7a, using: &g)))
            }
        }
        return s + "\""
    }

    static func number(_ g: inout SeededGenerator) -> String {
        switch Int.random(in: 0..<6, using: &g) {
        case 0: return String(Int.random(in: -1_000_000...1_000_000, using: &g))
        case 1: return String(format: "%.2f", Double.random(in: 0..<10_000, using: &g))
        case 2: return "\(Int.random(in: 1...9, using: &g)).\(Int.random(in: 0...999_999, using: &g))e\(Int.random(in: -30...30, using: &g))"
        case 3: return "0.\(String(repeating: "0", count: Int.random(in: 0...5, using: &g)))\(Int.random(in: 1...999_999_999, using: &g))"
        case 4: return String(Double.random(in: -1e300...1e300, using: &g))
        default: return "12345678901234567890123.5"
        }
    }

    static func value(_ g: inout SeededGenerator, depth: Int) -> String {
        switch Int.random(in: 0..<(depth > 2 ? 4 : 6), using: &g) {
        case 0: return string(&g)
        case 1: return number(&g)
        case 2: return ["true", "false", "null"].randomElement(using: &g)!
        case 3: return string(&g)
        case 4: return "[" + (0..<Int.random(in: 0...3, using: &g)).map { _ in ws(&g) + value(&g, depth: depth + 1) }.joined(separator: ",") + "]"
        default: return "{" + (0..<Int.random(in: 0...3, using: &g)).map { i in "\"k\(i)\"" + ws(&g) + ":" + value(&g, depth: depth + 1) }.joined(separator: ",") + "}"
        }
    }

    static func document(_ g: inout SeededGenerator) -> String {
        var fields = ["\"event_timestamp\":\(Int64.random(in: 0...4_000_000_000_000, using: &g))"]
        if Bool.random(using: &g) { fields.append("\"amount\":" + ws(&g) + number(&g)) }
        if Bool.random(using: &g) { fields.append("\"status\":" + string(&g)) }
        if Bool.random(using: &g) { fields.append("\"user_id\":\(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &g))") }
        for i in 0..<Int.random(in: 0...3, using: &g) { fields.append("\"x\(i)\":" + ws(&g) + value(&g, depth: 0)) }
        fields.shuffle(using: &g)
        return ws(&g) + "{" + fields.map { ws(&g) + $0 + ws(&g) }.joined(separator: ",") + "}" + ws(&g)
    }
}

@Suite("RFC 3339 formatting")
struct RFC3339FormatTests {
    @Test("formats UTC with microseconds and parses back, before and after 1970, years 0001–9999")
    func roundTrip() {
        #expect(RFC3339.format(0) == "1970-01-01T00:00:00.000000Z")
        #expect(RFC3339.format(-1) == "1969-12-31T23:59:59.999999Z")
        #expect(RFC3339.format(951_782_400_000_001) == "2000-02-29T00:00:00.000001Z")
        var g = SystemRandomNumberGenerator()
        let low = RFC3339.parse(Array("0001-01-01T00:00:00Z".utf8))!, high = RFC3339.parse(Array("9999-12-31T23:59:59.999999Z".utf8))!
        for t in [low, high] + (0..<2_000).map({ _ in Int64.random(in: low...high, using: &g) }) {
            #expect(RFC3339.parse(Array(RFC3339.format(t).utf8)) == t, "\(t)")
        }
    }
}
