import Foundation
import Testing
import TesseraCore
import TesseraSource
import TesseraTestSupport
import TesseraTopology

/// Fields at paths inside nested objects, and fields taken from the Kafka record (key, timestamp,
/// headers), against Foundation's JSONSerialization reading the same documents.
@Suite("Nested fields and record fields")
struct NestedAndRecordFieldTests {
    static let yaml = """
        team: t
        sources:
          - name: orders
            topic: orders
            format: json
            timestamp: {field: at, unit: ms}
            fields:
              amount: {type: float64, path: order.amount}
              order_id: {type: int64, path: order.id}
              user_id: {type: int64, path: user.id}
              country: {type: string, path: user.address.country}
              at: {type: int64, path: meta.at}
              status: string
        entities:
          - {name: user, join_keys: {user_id: int64}}
        feature_views:
          - name: v
            entities: [user]
            source: orders
            features:
              - {name: n, aggregate: count, window: 1h}
        """

    static func source(_ yaml: String = yaml) throws -> Source {
        try TopologyLoader.parse(yaml: yaml, file: "t.yaml").get().sources[0]
    }

    func decode(_ decoder: inout JSONEventDecoder, _ text: String, into batch: inout ColumnBatch) -> Rejection? {
        Array(text.utf8).withUnsafeBytes { decoder.decode($0, into: &batch) }
    }

    @Test("values at their paths, in any order; an absent or null object gives nulls; a scalar where an object must be is a wrong type")
    func paths() throws {
        var decoder = JSONEventDecoder(source: try Self.source())
        var batch = ColumnBatch(schema: decoder.schema.types)
        let doc = #"""
            {"user": {"address": {"zip": "1", "country": "DE"}, "id": 1001, "tags": [{"id": 9}]}, "status": "paid",
             "order": {"id": 7, "amount": 12.5, "items": {"amount": 99}}, "meta": {"at": 1767225600123}, "amount": 3}
            """#
        #expect(decode(&decoder, doc, into: &batch) == nil)
        #expect(batch.eventTimes == [1_767_225_600_123_000])
        let row = (0..<6).map { batch.columns[$0].value(at: 0) }
        #expect(row == [.double(12.5), .int(7), .int(1001), .string("DE"), .int(1_767_225_600_123), .string("paid")])
        // A null object, an absent one: their fields are null.
        #expect(decode(&decoder, #"{"meta": {"at": 5}, "user": null, "order": {}}"#, into: &batch) == nil)
        #expect((0..<4).map { batch.columns[$0].value(at: 1) } == [nil, nil, nil, nil])
        // The timestamp at a path is required like any timestamp.
        #expect(decode(&decoder, #"{"meta": {}, "user": {"id": 1}}"#, into: &batch)?.reason == .missingTimestamp)
        #expect(decode(&decoder, #"{"meta": null}"#, into: &batch)?.reason == .missingTimestamp)
        for bad in [#"{"meta": {"at": 5}, "user": 7}"#, #"{"meta": {"at": 5}, "order": [1]}"#, #"{"meta": {"at": 5}, "user": {"address": "x"}}"#,
                    #"{"meta": {"at": 5}, "order": {"amount": "12"}}"#] {
            let before = batch.count
            let r = decode(&decoder, bad, into: &batch)
            #expect(r?.reason == .wrongType, "\(bad): \(String(describing: r))")
            #expect(batch.count == before && batch.columns.allSatisfy { $0.count == before })
        }
        #expect(decode(&decoder, #"{"meta": {"at": 5}, "user": 7}"#, into: &batch)?.detail.contains("'user' must be an object") == true)
        // Keys with escapes match after unescaping, at any depth.
        #expect(decode(&decoder, #"{"me\u0074a": {"\u0061t": 6}, "user": {"i\u0064": 2}}"#, into: &batch) == nil)
        #expect(batch.eventTimes.last == 6_000 && batch.columns[2].value(at: batch.count - 1) == .int(2))
    }

    @Test("random nested documents decode as JSONSerialization reads them", arguments: 0..<10)
    func differential(seed: Int) throws {
        var g = SeededGenerator(seed: UInt64(seed) &+ 77)
        var decoder = JSONEventDecoder(source: try Self.source())
        for _ in 0..<300 {
            var user: [String] = [], order: [String] = []
            if Bool.random(using: &g) { user.append(#""id": \#(Int64.random(in: -1 << 50 ... 1 << 50, using: &g))"#) }
            if Bool.random(using: &g) { user.append(#""address": {"country": \#(RandomJSON.string(&g)), "x": \#(RandomJSON.value(&g, depth: 1))}"#) }
            if Bool.random(using: &g) { order.append(#""amount": \#(RandomJSON.number(&g))"#) }
            if Bool.random(using: &g) { order.append(#""noise": \#(RandomJSON.value(&g, depth: 0))"#) }
            var parts = [#""meta": {"at": \#(Int64.random(in: 0...4_000_000_000_000, using: &g))}"#, #""user": {\#(user.shuffled(using: &g).joined(separator: ","))}"#]
            if !order.isEmpty || Bool.random(using: &g) { parts.append(#""order": {\#(order.shuffled(using: &g).joined(separator: ","))}"#) }
            if Bool.random(using: &g) { parts.append(#""status": \#(RandomJSON.string(&g))"#) }
            parts.shuffle(using: &g)
            let text = "{" + parts.joined(separator: ", ") + "}"
            var batch = ColumnBatch(schema: decoder.schema.types)
            let r = decode(&decoder, text, into: &batch)
            #expect(r == nil, "\(text): \(String(describing: r))")
            guard r == nil else { continue }
            let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            func at(_ path: [String]) -> Any? {
                var node: Any? = object
                for p in path { node = (node as? [String: Any])?[p] }
                return node is NSNull ? nil : node
            }
            #expect(batch.eventTimes[0] == (at(["meta", "at"]) as! NSNumber).int64Value * 1_000)
            #expect(batch.columns[0].value(at: 0) == (at(["order", "amount"]) as? NSNumber).map { .double($0.doubleValue) }, "\(text)")
            #expect(batch.columns[2].value(at: 0) == (at(["user", "id"]) as? NSNumber).map { .int($0.int64Value) }, "\(text)")
            #expect(batch.columns[3].value(at: 0) == (at(["user", "address", "country"]) as? String).map { .string($0) }, "\(text)")
            #expect(batch.columns[5].value(at: 0) == (at(["status"]) as? String).map { .string($0) }, "\(text)")
        }
    }

    static let recordYAML = """
        team: t
        sources:
          - name: orders
            topic: orders
            format: json
            key: user_id
            timestamp: {field: produced_at, unit: ms}
            fields:
              user_id: {type: int64, header: user}
              produced_at: {type: int64, from: kafka_timestamp}
              record_key: {type: string, from: kafka_key}
              weight: {type: float64, header: weight}
              vip: {type: bool, header: vip}
              amount: float64
        entities:
          - {name: user, join_keys: {user_id: int64}}
        feature_views:
          - name: v
            entities: [user]
            source: orders
            features:
              - {name: n, aggregate: count, window: 1h}
        """

    @Test("the record's key, timestamp and headers as fields, the timestamp as event time; bad values and a missing timestamp rejected")
    func recordFields() throws {
        let source = try Self.source(Self.recordYAML)
        var decoder = JSONEventDecoder(source: source)
        var fields = try #require(RecordFields(source: source))
        #expect(fields.headerNames == ["user", "weight", "vip"])
        var batch = ColumnBatch(schema: source.schema.types)
        func row(key: String?, millis: Int64, headers: [String: String], payload: String = #"{"amount": 2.5}"#) -> Rejection? {
            let keyBytes = key.map { Array($0.utf8) }
            let values = fields.headerNames.map { headers[$0].map { Array($0.utf8) } }
            return withExtendedLifetime((keyBytes, values)) {
                let k = keyBytes.map { $0.withUnsafeBytes { $0 } }
                if let r = fields.read(key: k, timestampMillis: millis, header: { i in values[i].map { $0.withUnsafeBytes { $0 } } }) { return r }
                if let r = Array(payload.utf8).withUnsafeBytes({ decoder.decode($0, into: &batch) }) { return r }
                fields.append(into: &batch)
                return nil
            }
        }
        #expect(row(key: "1001", millis: 1_767_225_600_123, headers: ["user": "1001", "weight": "0.5", "vip": "true"]) == nil)
        #expect(row(key: nil, millis: 5, headers: ["user": "-7"]) == nil)
        #expect(batch.eventTimes == [1_767_225_600_123_000, 5_000])
        let columns = (0..<6).map { c in (0..<2).map { batch.columns[c].value(at: $0) } }
        #expect(columns[0] == [.int(1001), .int(-7)])
        #expect(columns[1] == [.int(1_767_225_600_123), .int(5)])
        #expect(columns[2] == [.string("1001"), nil])
        #expect(columns[3] == [.double(0.5), nil])
        #expect(columns[4] == [.bool(true), nil])
        #expect(columns[5] == [.double(2.5), .double(2.5)])
        // Rejected: nothing appended.
        let bad: [(String?, Int64, [String: String], DeadLetterReason)] = [
            ("1", -1, [:], .missingTimestamp), ("1", 5, ["user": "12x"], .wrongType), ("1", 5, ["user": "99999999999999999999"], .wrongType),
            ("1", 5, ["vip": "yes"], .wrongType), ("1", 5, ["weight": "inf"], .wrongType), ("1", Int64.max / 100, [:], .timestampOutOfRange),
        ]
        for (key, millis, headers, reason) in bad {
            #expect(row(key: key, millis: millis, headers: headers)?.reason == reason, "\(headers)")
            #expect(batch.count == 2 && batch.columns.allSatisfy { $0.count == 2 })
        }
        #expect(row(key: "1", millis: 5, headers: [:], payload: "not json")?.reason == .notJSON)
        #expect(batch.count == 2 && batch.columns.allSatisfy { $0.count == 2 })
    }

    @Test("DecimalText.parse reads exactly what Int64 reads")
    func decimal() {
        for text in ["0", "-0", "7", "-9223372036854775808", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
                     "", "-", "+1", " 1", "1 ", "01", "1e3", "١",
                     // Leading zeros past 19 digits, and 2⁶⁴ + 1 (which wraps to 1 in 64 bits).
                     "000000000000000000000042", "-00000000000000000000009223372036854775808", "18446744073709551617"] {
            let parsed = Array(text.utf8).withUnsafeBytes { DecimalText.parse($0) }
            #expect(parsed == (text.hasPrefix("+") ? nil : Int64(text)), "\(text)")
        }
    }
}
