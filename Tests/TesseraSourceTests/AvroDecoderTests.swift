import Foundation
import Testing
import TesseraCore
import TesseraSource
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload

/// Avro events in the schema registry's wire format, encoded here by hand from the binary
/// encoding of Avro's specification, decoded into the reference orders' columns; schema
/// resolution (added and removed fields, promotions, unions, enums, logical types, paths) and
/// every kind of bad input. The real serializer (confluent-kafka's AvroSerializer) is
/// tests/system/test_formats.py.
@Suite("Avro decoder")
struct AvroDecoderTests {
    /// Schemas as a registry holds them.
    struct Registry: SchemaLookup {
        var schemas: [UInt32: Result<RegisteredSchema, SchemaUnavailable>]
        func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? { schemas[id] }
    }

    static let v1 = """
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [
          {"name": "order_id", "type": "long"},
          {"name": "user_id", "type": "long"},
          {"name": "product_id", "type": "int"},
          {"name": "amount", "type": "double"},
          {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["paid", "refunded", "cancelled"]}},
          {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]}}},
          {"name": "labels", "type": {"type": "map", "values": "Status"}}
        ]}
        """
    /// v2: a field added with a default, a type widened (int → long), a union with null, a field
    /// removed (labels), a field moved (status last).
    static let v2 = """
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [
          {"name": "order_id", "type": "long"},
          {"name": "coupon", "type": ["null", "string"], "default": null},
          {"name": "user_id", "type": "long"},
          {"name": "product_id", "type": "long"},
          {"name": "amount", "type": ["null", "double"], "default": null},
          {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "lines", "type": {"type": "array", "items": "string"}},
          {"name": "status", "type": "string"}
        ]}
        """

    static func orders() -> Source { growthOrders }

    // The binary encoding, by hand.
    static func long(_ v: Int64, _ out: inout [UInt8]) { Varint.append(Varint.zigzag(v), to: &out) }
    static func string(_ s: String, _ out: inout [UInt8]) { long(Int64(s.utf8.count), &out); out += Array(s.utf8) }
    static func double(_ d: Double, _ out: inout [UInt8]) { withUnsafeBytes(of: d.bitPattern.littleEndian) { out += $0 } }
    static func framed(_ id: UInt32, _ body: [UInt8]) -> [UInt8] {
        [0, UInt8(id >> 24), UInt8(id >> 16 & 0xff), UInt8(id >> 8 & 0xff), UInt8(id & 0xff)] + body
    }

    struct Order { var orderID: Int64, userID: Int64, productID: Int64, amount: Double?, status: Int, millis: Int64 }

    static func encodeV1(_ o: Order, lines: Int = 2) -> [UInt8] {
        var b: [UInt8] = []
        long(o.orderID, &b); long(o.userID, &b); long(o.productID, &b); double(o.amount!, &b); long(Int64(o.status), &b); long(o.millis, &b)
        // lines: one block of `lines` records, then the end; labels: a negative-count block with its size.
        if lines > 0 {
            long(Int64(lines), &b)
            for i in 0..<lines { string("sku-\(i)", &b) }
        }
        long(0, &b)
        var block: [UInt8] = []
        string("a", &block); long(1, &block)
        long(-1, &b); long(Int64(block.count), &b); b += block; long(0, &b)
        return framed(1, b)
    }

    static func encodeV2(_ o: Order, coupon: String?) -> [UInt8] {
        var b: [UInt8] = []
        long(o.orderID, &b)
        if let coupon { long(1, &b); string(coupon, &b) } else { long(0, &b) }
        long(o.userID, &b); long(o.productID, &b)
        if let a = o.amount { long(1, &b); double(a, &b) } else { long(0, &b) }
        long(o.millis, &b)
        long(0, &b)
        string(["paid", "refunded", "cancelled"][o.status], &b)
        return framed(2, b)
    }

    func decoder(_ schemas: [UInt32: Result<RegisteredSchema, SchemaUnavailable>], source: Source? = nil) throws -> AvroEventDecoder {
        AvroEventDecoder(source: source ?? Self.orders(), schemas: Registry(schemas: schemas))
    }

    @Test("v1 and v2 events, mixed, decode to the same columns as the orders they encode")
    func resolution() throws {
        var d = try decoder([1: .success(RegisteredSchema(kind: .avro, text: Self.v1)), 2: .success(RegisteredSchema(kind: .avro, text: Self.v2))])
        var g = SeededGenerator(seed: 9)
        var batch = ColumnBatch(schema: d.schema.types)
        var expected: [Order] = []
        for i in 0..<3_000 {
            var o = Order(orderID: Int64.random(in: .min ... .max, using: &g), userID: Int64.random(in: -5 ... 1 << 40, using: &g),
                          productID: Int64(Int32.random(in: .min ... .max, using: &g)), amount: Double.random(in: -1e6...1e6, using: &g),
                          status: Int.random(in: 0..<3, using: &g), millis: Int64.random(in: 0...4_000_000_000_000, using: &g))
            let bytes: [UInt8]
            if i % 2 == 0 {
                bytes = Self.encodeV1(o, lines: i % 7)
            } else {
                o.productID = Int64.random(in: .min ... .max, using: &g)
                if i % 5 == 1 { o.amount = nil }
                bytes = Self.encodeV2(o, coupon: i % 3 == 0 ? "c\(i)" : nil)
            }
            let r = bytes.withUnsafeBytes { d.decode($0, into: &batch) }
            #expect(r == nil, "\(i): \(String(describing: r))")
            expected.append(o)
        }
        for (i, o) in expected.enumerated() {
            #expect(batch.eventTimes[i] == o.millis * 1_000)
            #expect(batch.columns[0].value(at: i) == .int(o.orderID))
            #expect(batch.columns[1].value(at: i) == .int(o.userID))
            #expect(batch.columns[2].value(at: i) == .int(o.productID))
            #expect(batch.columns[3].value(at: i) == o.amount.map { .double($0) })
            #expect(batch.columns[4].value(at: i) == .string(["paid", "refunded", "cancelled"][o.status]))
        }
    }

    @Test("the reference orders as Avro (ReferenceWorkload.avro) decode to the columns the generator appends")
    func reference() throws {
        var d = try decoder([1: .success(RegisteredSchema(kind: .avro, text: ReferenceWorkload.avroSchema))])
        expectReferenceOrders(&d) { ReferenceWorkload.avro($0, schemaID: 1, into: &$1) }
    }

    @Test("paths through nested records, int and decimal read as float64, bytes as text, a union's null branch")
    func nested() throws {
        let source = try TopologyLoader.parse(yaml: """
            team: t
            sources:
              - name: s
                topic: s
                format: avro
                schema_registry: {url: http://registry:8081}
                timestamp: {field: at, unit: us}
                fields:
                  user_id: {type: int64, path: user.id}
                  price: {type: float64, path: order.price}
                  qty: {type: float64, path: order.qty}
                  note: {type: string, path: order.note}
                  at: {type: int64, path: meta.at}
            entities: [{name: user, join_keys: {user_id: int64}}]
            feature_views: [{name: v, entities: [user], source: s, features: [{name: n, aggregate: count, window: 1h}]}]
            """, file: "t.yaml").get().sources[0]
        let schema = """
            {"type": "record", "name": "E", "fields": [
              {"name": "meta", "type": {"type": "record", "name": "Meta", "fields": [{"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}}]}},
              {"name": "user", "type": ["null", {"type": "record", "name": "User", "fields": [{"name": "name", "type": "string"}, {"name": "id", "type": "long"}]}]},
              {"name": "order", "type": {"type": "record", "name": "O", "fields": [
                {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
                {"name": "qty", "type": "int"},
                {"name": "note", "type": "bytes"}]}}
            ]}
            """
        var d = try decoder([7: .success(RegisteredSchema(kind: .avro, text: schema))], source: source)
        var batch = ColumnBatch(schema: d.schema.types)
        func event(user: Int64?, unscaled: [UInt8], qty: Int64, note: String) -> [UInt8] {
            var b: [UInt8] = []
            Self.long(1_767_225_600_123_456, &b)
            if let user { Self.long(1, &b); Self.string("ann", &b); Self.long(user, &b) } else { Self.long(0, &b) }
            Self.long(Int64(unscaled.count), &b); b += unscaled
            Self.long(qty, &b); Self.string(note, &b)
            return Self.framed(7, b)
        }
        // 12345 × 10^-2 and -1 × 10^-2 (two's complement 0xff).
        for bytes in [event(user: 42, unscaled: [0x30, 0x39], qty: 3, note: "ok"), event(user: nil, unscaled: [0xff], qty: -2, note: "")] {
            #expect(bytes.withUnsafeBytes { d.decode($0, into: &batch) } == nil)
        }
        #expect(batch.eventTimes == [1_767_225_600_123_456, 1_767_225_600_123_456])
        #expect((0..<4).map { batch.columns[$0].value(at: 0) } == [.int(42), .double(123.45), .double(3), .string("ok")])
        #expect((0..<4).map { batch.columns[$0].value(at: 1) } == [nil, .double(-0.01), .double(-2), .string("")])
    }

    @Test("every kind of bad input is rejected with its reason and leaves the batch untouched")
    func rejections() throws {
        let micros = Self.v1.replacingOccurrences(of: "timestamp-millis", with: "timestamp-micros")
        let amountAsString = Self.v1.replacingOccurrences(of: #"{"name": "amount", "type": "double"}"#, with: #"{"name": "amount", "type": "string"}"#)
        var d = try decoder([
            1: .success(RegisteredSchema(kind: .avro, text: Self.v1)),
            3: .failure(SchemaUnavailable("the registry has no schema 3")),
            4: .success(RegisteredSchema(kind: .protobuf, text: "syntax = \"proto3\";")),
            5: .success(RegisteredSchema(kind: .avro, text: micros)),
            6: .success(RegisteredSchema(kind: .avro, text: amountAsString)),
            8: .success(RegisteredSchema(kind: .avro, text: #"{"type": "record", "name": "R", "fields": [{"name": "next", "type": ["null", "R"]}]}"#)),
            9: .success(RegisteredSchema(kind: .avro, text: "not json")),
        ])
        var batch = ColumnBatch(schema: d.schema.types)
        let good = Self.encodeV1(Order(orderID: 1, userID: 2, productID: 3, amount: 4.5, status: 0, millis: 5))
        #expect(good.withUnsafeBytes { d.decode($0, into: &batch) } == nil)
        var truncated = good
        truncated.removeLast(3)
        var badEnum = Self.encodeV1(Order(orderID: 1, userID: 2, productID: 3, amount: 4.5, status: 0, millis: 5), lines: 0)
        badEnum[5 + 1 + 1 + 1 + 8] = 2 * 9  // status symbol 9 of 3 (zigzag)
        var hugeLength = Self.framed(1, [])
        Self.long(1, &hugeLength); Self.long(2, &hugeLength); Self.long(3, &hugeLength); Self.double(1, &hugeLength)
        Self.long(0, &hugeLength); Self.long(5, &hugeLength); Self.long(1, &hugeLength); Self.long(1 << 40, &hugeLength)
        let cases: [([UInt8], DeadLetterReason)] = [
            ([], .undecodable), ([1, 0, 0, 0, 1] + good.dropFirst(5), .undecodable), ([0, 0, 0], .undecodable),
            (Array(#"{"order_id": 1}"#.utf8), .undecodable), (truncated, .undecodable), (good + [0], .undecodable), (badEnum, .undecodable),
            (hugeLength, .undecodable), (Self.framed(3, Array(good.dropFirst(5))), .schemaUnavailable),
            (Self.framed(99, Array(good.dropFirst(5))), .schemaUnavailable), (Self.framed(4, Array(good.dropFirst(5))), .schemaMismatch),
            (Self.framed(5, Array(good.dropFirst(5))), .schemaMismatch), (Self.framed(6, Array(good.dropFirst(5))), .schemaMismatch),
            (Self.framed(8, [0]), .schemaMismatch), (Self.framed(9, [0]), .schemaMismatch),
            (Self.encodeV1(Order(orderID: 1, userID: 2, productID: 3, amount: .nan, status: 0, millis: 5)), .wrongType),
            (Self.encodeV1(Order(orderID: 1, userID: 2, productID: 3, amount: -.infinity, status: 0, millis: 5)), .wrongType),
        ]
        for (i, (bytes, reason)) in cases.enumerated() {
            let r = bytes.withUnsafeBytes { d.decode($0, into: &batch) }
            #expect(r?.reason == reason, "case \(i): \(String(describing: r))")
            #expect(batch.count == 1 && batch.columns.allSatisfy { $0.count == 1 }, "case \(i)")
        }
    }

    @Test("mutated events never crash: a row or a rejection, nothing in between", arguments: 0..<4)
    func mutations(seed: Int) throws {
        var d = try decoder([1: .success(RegisteredSchema(kind: .avro, text: Self.v1)), 2: .success(RegisteredSchema(kind: .avro, text: Self.v2))])
        expectMutationsRowOrRejection(&d, seed: UInt64(seed) &+ 300) { i in
            let o = Order(orderID: Int64(i), userID: 7, productID: 3, amount: 1.5, status: i % 3, millis: 1_000)
            return i % 2 == 0 ? Self.encodeV1(o, lines: i % 4) : Self.encodeV2(o, coupon: "x")
        }
    }
}
