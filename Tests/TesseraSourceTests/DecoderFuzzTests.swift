import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
import TesseraSource
import TesseraTopology
import TesseraWorkload

// Seeded random mutation of event payloads, the quick in-suite companion of the libFuzzer target
// in fuzz/ (scripts/fuzz.sh): every payload, however broken, becomes a row or a dead letter with a
// reason, and nothing in between (docs/design.md, "Bad input and faults").

/// The `orders` source of topologies/growth.yaml, as the worker decodes it.
let growthOrders: Source = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let file = root.appendingPathComponent("topologies/growth.yaml").path
    guard let source = try? TopologyLoader.load(files: [file]).first?.source(named: "orders") else {
        fatalError("\(file) has no source 'orders'")
    }
    return source
}()

/// Byte-level mutations of JSON payloads, each chosen to reach a different way of being wrong.
struct PayloadMutator {
    var g: SeededGenerator
    /// Fragments spliced into payloads: field names, literals JSON does not have, numbers out of
    /// every range, broken escapes and UTF-8.
    static let tokens: [[UInt8]] = ([
        #""event_timestamp":"#, #""user_id":"#, #""amount":"#, #""status":"#, #""order_id":"#, #""product_id":"#,
        "null", "true", "false", "NaN", "-NaN", "Infinity", "-Infinity", "nan", "inf", "1e999", "-1e999", "1e-999",
        "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616", "-0", "0.0e0",
        "1.", ".5", "+1", "01", "1e", "1e+", "0x10", "253402300800000", "-62135596800001", "\"2026-01-01T00:00:00Z\"",
        #""\u0000""#, #""\ud800""#, #""\udc00\ud800""#, #""\uD83D\uDE00""#, #"\"#, #"\u"#, #"\x"#, "\"", ",", ":", "{", "}", "[", "]",
        "{}", "[]", "\t", "\n", " ",
    ] as [String]).map { Array($0.utf8) } + [
        [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x00], [0xEF, 0xBB, 0xBF], [0xC3, 0xA9],
    ]

    init(seed: UInt64) { g = SeededGenerator(seed: seed) }

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &g) }

    /// One to four mutations of `bytes`; `other` is another payload to splice from.
    mutating func mutate(_ input: [UInt8], splicing other: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0..<int(1..<5) {
            let at = int(0..<(bytes.count + 1))
            switch int(0..<12) {
            case 0 where !bytes.isEmpty:  // flip one bit
                let i = int(0..<bytes.count)
                bytes[i] ^= 1 << UInt8(int(0..<8))
            case 1 where !bytes.isEmpty:  // any byte
                bytes[int(0..<bytes.count)] = UInt8.random(in: 0...255, using: &g)
            case 2:  // truncate
                bytes.removeSubrange(at...)
            case 3 where at < bytes.count:  // delete a run
                bytes.removeSubrange(at..<min(bytes.count, at + int(1..<16)))
            case 4:  // splice: this payload's head, the other's tail
                bytes = Array(bytes[..<at]) + other[int(0..<(other.count + 1))...]
            case 5 where at < bytes.count:  // repeat a run
                let run = bytes[at..<min(bytes.count, at + int(1..<24))]
                bytes.insert(contentsOf: Array(repeating: Array(run), count: int(1..<6)).joined(), at: at)
            case 6:  // deep nesting, in an undeclared field or at the top
                let n = [3, 127, 128, 129, 500, 5_000][int(0..<6)]
                let open = int(0..<2) == 0 ? "[" : "{\"k\":"
                let close = open == "[" ? "]" : "}"
                let nest = String(repeating: open, count: n) + "1" + String(repeating: close, count: int(0..<2) == 0 ? n : n / 2)
                bytes.insert(contentsOf: Array(("\"deep\":" + nest + ",").utf8), at: at)
            case 7:  // a huge number
                let digits = String(repeating: "9", count: [20, 400, 3_000][int(0..<3)])
                let forms = [digits, "-" + digits, "0." + digits, digits + "e-99999", "1e" + digits, "-0.0000" + digits + "E+" + digits]
                bytes.insert(contentsOf: Array(forms[int(0..<forms.count)].utf8), at: at)
            default:  // a token
                bytes.insert(contentsOf: Self.tokens[int(0..<Self.tokens.count)], at: at)
            }
        }
        return bytes
    }
}

@Suite("JSON event decoder, mutated payloads", .timeLimit(.minutes(1)))
struct DecoderFuzzTests {
    /// Valid payloads to mutate: reference orders and the varied documents of `RandomJSON`.
    static func corpus(seed: UInt64) -> [[UInt8]] {
        var g = SeededGenerator(seed: seed)
        let workload = ReferenceWorkload(.init(events: 10_000, users: 100, skew: 1.1, span: Time.day, disorder: 0, seed: seed))
        return (0..<64).map { i in
            if i % 2 == 0 {
                var json: [UInt8] = []
                ReferenceWorkload.json(workload.order(Int(seed) * 64 + i), into: &json)
                return json
            }
            return Array(RandomJSON.document(&g).utf8)
        }
    }

    @Test("every mutated payload is a row or a dead letter with a reason: rows + dead letters = inputs", arguments: 0..<8)
    func mutations(seed: Int) {
        let inputs = 1_000
        let corpus = Self.corpus(seed: UInt64(seed))
        var mutator = PayloadMutator(seed: 0xF022 &+ UInt64(seed))
        // Long-lived, as in the worker (its scratch state carries over from payload to payload).
        var decoder = JSONEventDecoder(source: growthOrders, maxBytes: 16_384)
        let template = decoder
        var batch = ColumnBatch(schema: decoder.schema.types)
        var rows = 0
        var deadLetters: [DeadLetterReason: Int] = [:]
        for n in 0..<inputs {
            let payload = mutator.mutate(corpus[n % corpus.count], splicing: corpus[mutator.int(0..<corpus.count)])
            let before = batch.count
            let rejection = payload.withUnsafeBytes { decoder.decode($0, into: &batch) }
            if let rejection {
                deadLetters[rejection.reason, default: 0] += 1
                #expect(!rejection.detail.isEmpty, "no detail for \(rejection.reason)")
                #expect(batch.count == before, "rejected as \(rejection), but a row was appended")
            } else {
                rows += 1
                #expect(batch.count == before + 1)
                #expect(PartitionAggregator.validTimes.contains(batch.eventTimes[before]))
            }
            #expect(batch.columns.allSatisfy { $0.count == batch.count }, "columns out of step after \(String(decoding: payload, as: UTF8.self))")
            // A fresh decoder comes to the same verdict: no state leaks from earlier payloads.
            var fresh = template
            var freshBatch = ColumnBatch(schema: fresh.schema.types)
            let again = payload.withUnsafeBytes { fresh.decode($0, into: &freshBatch) }
            #expect(again == rejection, "\(String(decoding: payload, as: UTF8.self)): \(String(describing: again)) vs \(String(describing: rejection))")
            // And the same row: the long-lived decoder's memory of earlier events' keys changes nothing.
            if rejection == nil, again == nil {
                #expect(batch.eventTimes[before] == freshBatch.eventTimes[0]
                        && batch.columns.indices.allSatisfy { batch.columns[$0].value(at: before) == freshBatch.columns[$0].value(at: 0) },
                        "\(String(decoding: payload, as: UTF8.self)): another row than a fresh decoder's")
            }
        }
        let rejected = deadLetters.values.reduce(0, +)
        #expect(rows + rejected == inputs, "\(rows) rows + \(rejected) dead letters for \(inputs) payloads")
        #expect(batch.count == rows)
        // The mutations reach both outcomes and several reasons (else they test little).
        #expect(rows > 0 && rejected > inputs / 4, "\(rows) rows, dead letters \(deadLetters)")
        #expect(deadLetters.count >= 3, "dead letters \(deadLetters)")
    }

    @Test("payloads built to hurt: deep nesting, huge numbers, NaN-like literals, invalid UTF-8, truncations")
    func hostile() {
        var decoder = JSONEventDecoder(source: growthOrders, maxBytes: 1 << 20)
        var batch = ColumnBatch(schema: decoder.schema.types)
        let valid = #"{"order_id":1,"user_id":7,"product_id":3,"amount":12.5,"status":"paid","event_timestamp":1767225600000}"#
        let nines = String(repeating: "9", count: 100_000)
        var cases: [(name: String, payload: [UInt8], reason: DeadLetterReason?)] = []
        func add(_ name: String, _ payload: [UInt8], _ reason: DeadLetterReason?) { cases.append((name, payload, reason)) }
        func add(_ name: String, _ text: String, _ reason: DeadLetterReason?) { add(name, Array(text.utf8), reason) }
        add("valid", Array(valid.utf8), nil)
        add("deep arrays, undeclared", "{\"x\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}", .notJSON)
        add("deep objects, undeclared", "{\"x\":" + String(repeating: "{\"a\":", count: 50_000) + "1" + String(repeating: "}", count: 50_000) + "}", .notJSON)
        add("deep nesting, unterminated", "{\"x\":" + String(repeating: "[", count: 200_000), .notJSON)
        add("nesting at the limit", "{\"event_timestamp\":1,\"x\":" + String(repeating: "[", count: 128) + String(repeating: "]", count: 128) + "}", nil)
        add("a declared field nested", #"{"event_timestamp":1,"user_id":[[[[1]]]]}"#, .wrongType)
        add("100 000 digits, float64", "{\"event_timestamp\":1,\"amount\":\(nines)}", .wrongType)
        add("100 000 digits, int64", "{\"event_timestamp\":1,\"user_id\":\(nines)}", .wrongType)
        add("100 000 digits, undeclared", "{\"event_timestamp\":1,\"x\":\(nines)}", nil)
        add("100 000 fraction digits", "{\"event_timestamp\":1,\"amount\":0.\(nines)}", nil)
        add("100 000 digit timestamp", "{\"event_timestamp\":\(nines)}", .timestampOutOfRange)
        add("100 000 digit exponent", "{\"event_timestamp\":1,\"amount\":1e\(nines)}", .wrongType)
        add("tiny exponent", "{\"event_timestamp\":1,\"amount\":1e-\(nines)}", nil)
        add("exponent timestamp", #"{"event_timestamp":1.7672256e12}"#, nil)
        add("huge exponent timestamp", #"{"event_timestamp":1e300}"#, .timestampOutOfRange)
        add("NaN", #"{"event_timestamp":1,"amount":NaN}"#, .notJSON)
        add("Infinity", #"{"event_timestamp":1,"amount":Infinity}"#, .notJSON)
        add("-Infinity", #"{"event_timestamp":-Infinity}"#, .notJSON)
        add("NaN timestamp in quotes", #"{"event_timestamp":"NaN"}"#, .wrongType)
        add("1e999 float64", #"{"event_timestamp":1,"amount":1e999}"#, .wrongType)
        add("int64 min", #"{"event_timestamp":1,"user_id":-9223372036854775808}"#, nil)
        add("int64 min - 1", #"{"event_timestamp":1,"user_id":-9223372036854775809}"#, .wrongType)
        add("timestamp overflows on scaling", #"{"event_timestamp":9223372036854775807}"#, .timestampOutOfRange)
        add("invalid UTF-8 in a value", Array(#"{"event_timestamp":1,"status":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8), .invalidUTF8)
        add("invalid UTF-8 in an undeclared key", Array(#"{"event_timestamp":1,""#.utf8) + [0xC0, 0xAF] + Array(#"":1}"#.utf8), .invalidUTF8)
        add("invalid UTF-8 outside strings", Array(#"{"event_timestamp":1,"#.utf8) + [0xC3, 0xA9] + Array("}".utf8), .notJSON)
        add("truncated UTF-8 at the end", Array(#"{"event_timestamp":1,"status":""#.utf8) + [0xE2, 0x82], .invalidUTF8)
        add("a NUL byte", Array(#"{"event_timestamp":1,"status":"a"#.utf8) + [0x00] + Array(#""}"#.utf8), .notJSON)
        add("an escaped NUL", #"{"event_timestamp":1,"status":"a\u0000b"}"#, nil)
        add("a byte-order mark", [0xEF, 0xBB, 0xBF] + Array(valid.utf8), .notJSON)
        add("UTF-16", Array(valid.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }), .notJSON)
        add("trailing comma", #"{"event_timestamp":1,}"#, .notJSON)
        add("only whitespace", " \n\t ", .notJSON)
        for n in 0..<valid.utf8.count { add("truncated to \(n) bytes", Array(valid.utf8.prefix(n)), .notJSON) }
        var rows = 0, deadLetters = 0
        for (name, payload, expected) in cases {
            let before = batch.count
            let rejection = payload.withUnsafeBytes { decoder.decode($0, into: &batch) }
            if rejection == nil { rows += 1 } else { deadLetters += 1 }
            #expect(rejection?.reason == expected, "\(name): \(String(describing: rejection))")
            #expect(batch.count == before + (rejection == nil ? 1 : 0), "\(name)")
            #expect(batch.columns.allSatisfy { $0.count == batch.count }, "\(name)")
        }
        #expect(rows + deadLetters == cases.count && batch.count == rows)
    }
}
