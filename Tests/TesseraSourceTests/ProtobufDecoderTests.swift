import Foundation
import Testing
import TesseraCore
import TesseraSource
import TesseraTestSupport
import TesseraTopology
import TesseraWorkload

/// Protobuf events: a `FileDescriptorProto` and two messages serialized by Python's protobuf
/// library (google.protobuf 5, `message_factory` over the descriptor below), read by the decoder
/// with no protobuf library — every integer encoding, floats, enums, a Timestamp, a wrapper, a
/// nested message on a path, proto3 defaults and presence; then framings and bad input. The
/// real serializer (confluent-kafka's ProtobufSerializer) is tests/system/test_formats.py.
@Suite("Protobuf decoder")
struct ProtobufDecoderTests {
    /// shop/order.proto, proto3: enum Status {PAID, REFUNDED, CANCELLED}; message Order {int64
    /// order_id = 1; sint64 user_id = 2; uint32 product_id = 3; double amount = 4; Status status = 5;
    /// google.protobuf.Timestamp event_time = 6; optional string coupon = 7; message Item {string sku
    /// = 1; fixed32 qty = 2; float price = 3} Item item = 8; repeated string tags = 9; bool gift = 10;
    /// google.protobuf.DoubleValue discount = 11}; message Other {int32 x = 1}.
    static let file = "ChBzaG9wL29yZGVyLnByb3RvEgRzaG9wGh9nb29nbGUvcHJvdG9idWYvdGltZXN0YW1wLnByb3RvGh5nb29nbGUvcHJvdG9idWYvd3JhcHBlcnMucHJvdG8i2QIKBU9yZGVyEhAKCG9yZGVyX2lkGAEgASgDEg8KB3VzZXJfaWQYAiABKBISEgoKcHJvZHVjdF9pZBgDIAEoDRIOCgZhbW91bnQYBCABKAESHAoGc3RhdHVzGAUgASgOMgwuc2hvcC5TdGF0dXMSLgoKZXZlbnRfdGltZRgGIAEoCzIaLmdvb2dsZS5wcm90b2J1Zi5UaW1lc3RhbXASEwoGY291cG9uGAcgASgJSACIAQESHgoEaXRlbRgIIAEoCzIQLnNob3AuT3JkZXIuSXRlbRIMCgR0YWdzGAkgAygJEgwKBGdpZnQYCiABKAgSLgoIZGlzY291bnQYCyABKAsyHC5nb29nbGUucHJvdG9idWYuRG91YmxlVmFsdWUaLwoESXRlbRILCgNza3UYASABKAkSCwoDcXR5GAIgASgHEg0KBXByaWNlGAMgASgCQgkKB19jb3Vwb24iEgoFT3RoZXISCQoBeBgBIAEoBSovCgZTdGF0dXMSCAoEUEFJRBAAEgwKCFJFRlVOREVEEAESDQoJQ0FOQ0VMTEVEEAJiBnByb3RvMw=="
    /// Order(order_id=912345, user_id=-1001, product_id=52, amount=37.5, status=REFUNDED, coupon="SAVE",
    /// gift=True, tags=["a", "b"], event_time=1767225600.123456789 s, item={sku-1, 3, 2.5}, discount=0.25).
    static let full: [UInt8] = [8, 217, 215, 55, 16, 209, 15, 24, 52, 33, 0, 0, 0, 0, 0, 192, 66, 64, 40, 1, 50, 11, 8, 128, 242, 214, 202, 6, 16, 149,
                                154, 239, 58, 58, 4, 83, 65, 86, 69, 66, 17, 10, 5, 115, 107, 117, 45, 49, 21, 3, 0, 0, 0, 29, 0, 0, 32, 64, 74, 1, 97,
                                74, 1, 98, 80, 1, 90, 9, 9, 0, 0, 0, 0, 0, 0, 208, 63]
    /// Order(order_id=7, event_time=1767225601 s): every other field left out.
    static let sparse: [UInt8] = [8, 7, 50, 6, 8, 129, 242, 214, 202, 6]

    static let yaml = """
        team: t
        sources:
          - name: s
            topic: s
            format: protobuf
            schema_registry: {url: http://registry:8081}
            timestamp: {field: event_time, unit: ms}
            fields:
              order_id: int64
              user_id: int64
              product_id: float64
              amount: float64
              status: string
              event_time: int64
              coupon: string
              sku: {type: string, path: item.sku}
              qty: {type: int64, path: item.qty}
              price: {type: float64, path: item.price}
              gift: bool
              discount: float64
              missing: string
        entities: [{name: user, join_keys: {user_id: int64}}]
        feature_views: [{name: v, entities: [user], source: s, features: [{name: n, aggregate: count, window: 1h}]}]
        """

    struct Registry: SchemaLookup {
        var schemas: [UInt32: Result<RegisteredSchema, SchemaUnavailable>]
        func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? { schemas[id] }
    }

    static func source(_ yaml: String = yaml) throws -> Source { try TopologyLoader.parse(yaml: yaml, file: "t.yaml").get().sources[0] }

    /// The registry's framing: zero, the id, the message-index list (zigzag count, zigzag indexes; [0] as one zero).
    static func framed(_ id: UInt32, indexes: [Int64] = [0], _ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0, UInt8(id >> 24), UInt8(id >> 16 & 0xff), UInt8(id >> 8 & 0xff), UInt8(id & 0xff)]
        if indexes == [0] { out.append(0) } else {
            Varint.append(Varint.zigzag(Int64(indexes.count)), to: &out)
            for i in indexes { Varint.append(Varint.zigzag(i), to: &out) }
        }
        return out + body
    }

    func decoder(_ schemas: [UInt32: Result<RegisteredSchema, SchemaUnavailable>] = [1: .success(RegisteredSchema(kind: .protobuf, text: Self.file))],
                 yaml: String = yaml) throws -> ProtobufEventDecoder {
        ProtobufEventDecoder(source: try Self.source(yaml), schemas: Registry(schemas: schemas))
    }

    @Test("every field type as Python's protobuf wrote it; absent proto3 scalars are their defaults, absent fields with presence null")
    func values() throws {
        var d = try decoder()
        var batch = ColumnBatch(schema: d.schema.types)
        #expect(Self.framed(1, Self.full).withUnsafeBytes { d.decode($0, into: &batch) } == nil)
        #expect(Self.framed(1, Self.sparse).withUnsafeBytes { d.decode($0, into: &batch) } == nil)
        #expect(batch.eventTimes == [1_767_225_600_123_000, 1_767_225_601_000_000])
        let full: [Value?] = [.int(912_345), .int(-1001), .double(52), .double(37.5), .string("REFUNDED"), .int(1_767_225_600_123), .string("SAVE"),
                              .string("sku-1"), .int(3), .double(2.5), .bool(true), .double(0.25), nil]
        #expect((0..<13).map { batch.columns[$0].value(at: 0) } == full)
        // Sparse: proto3 scalars read as defaults (0, 0.0, the first enum value, false); coupon
        // (optional), item (a message) and discount (a wrapper) have presence: null.
        let sparse: [Value?] = [.int(7), .int(0), .double(0), .double(0), .string("PAID"), .int(1_767_225_601_000), nil, nil, nil, nil,
                                .bool(false), nil, nil]
        #expect((0..<13).map { batch.columns[$0].value(at: 1) } == sparse)
    }

    @Test("the reference orders as Protobuf (ReferenceWorkload.protobuf) decode to the columns the generator appends")
    func reference() throws {
        var d = ProtobufEventDecoder(source: growthOrders, schemas: Registry(schemas: [1: .success(RegisteredSchema(kind: .protobuf, text: ReferenceWorkload.protobufDescriptor))]))
        expectReferenceOrders(&d) { ReferenceWorkload.protobuf($0, schemaID: 1, into: &$1) }
    }

    @Test("a nested message chosen by its message indexes; a descriptor set file and plain messages")
    func indexesAndDescriptorSets() throws {
        let other = """
            team: t
            sources:
              - name: s
                topic: s
                format: protobuf
                schema_registry: {url: http://registry:8081}
                timestamp: {field: at, unit: ms}
                fields: {x: int64, sku: string, qty: int64}
            entities: [{name: e, join_keys: {x: int64}}]
            feature_views: [{name: v, entities: [e], source: s, features: [{name: n, aggregate: count, window: 1h}]}]
            """
        var d = try decoder(yaml: other)
        var batch = ColumnBatch(schema: d.schema.types)
        // Order.Item is [0, 0]; Other is [1]. Neither has the timestamp field `at`: missing.
        let item: [UInt8] = [10, 2, 115, 49, 21, 9, 0, 0, 0]
        #expect(Self.framed(1, indexes: [0, 0], item).withUnsafeBytes { d.decode($0, into: &batch) }?.reason == .missingTimestamp)
        #expect(Self.framed(1, indexes: [1], [8, 5]).withUnsafeBytes { d.decode($0, into: &batch) }?.reason == .missingTimestamp)
        #expect(Self.framed(1, indexes: [2], [8, 5]).withUnsafeBytes { d.decode($0, into: &batch) }?.reason == .schemaMismatch)

        // A FileDescriptorSet holding the file; plain payloads of shop.Order.
        var set: [UInt8] = [10]
        let fileBytes = Array(Data(base64Encoded: Self.file)!)
        Varint.append(UInt64(fileBytes.count), to: &set)
        set += fileBytes
        var plain = try ProtobufEventDecoder(source: try Self.source(), descriptorSet: set, message: "shop.Order")
        batch = ColumnBatch(schema: plain.schema.types)
        #expect(Self.full.withUnsafeBytes { plain.decode($0, into: &batch) } == nil)
        #expect(batch.columns[7].value(at: 0) == .string("sku-1"))
        #expect(throws: ProtobufSchemaError.self) { try ProtobufEventDecoder(source: try Self.source(), descriptorSet: set, message: "shop.Nope") }
        // A declared field of a type that does not read as declared is known at once.
        let wrong = Self.yaml.replacingOccurrences(of: "status: string", with: "status: int64")
        #expect(throws: ProtobufSchemaError.self) { try ProtobufEventDecoder(source: try Self.source(wrong), descriptorSet: set, message: "shop.Order") }
    }

    @Test("every kind of bad input is rejected with its reason and leaves the batch untouched")
    func rejections() throws {
        var d = try decoder([1: .success(RegisteredSchema(kind: .protobuf, text: Self.file)), 2: .failure(SchemaUnavailable("no schema 2")),
                             3: .success(RegisteredSchema(kind: .avro, text: "{}")), 4: .success(RegisteredSchema(kind: .protobuf, text: "syntax = \"proto3\";")),
                             5: .success(RegisteredSchema(kind: .protobuf, text: Self.file))])
        var tagsAsValue = try decoder([1: .success(RegisteredSchema(kind: .protobuf, text: Self.file))],
                                      yaml: Self.yaml.replacingOccurrences(of: "missing: string", with: "tags: string"))
        var batch = ColumnBatch(schema: d.schema.types)
        #expect(Self.framed(1, Self.full).withUnsafeBytes { d.decode($0, into: &batch) } == nil)
        var truncated = Self.framed(1, Self.full)
        truncated.removeLast(2)
        var badEnum = Self.framed(1, Self.sparse)
        badEnum += [40, 9]  // status = 9: not in the enum
        var wrongWire = Self.framed(1, Self.sparse)
        wrongWire += [33, 1]  // amount (4) as a varint
        let cases: [([UInt8], DeadLetterReason)] = [
            ([], .undecodable), (Array("{}".utf8), .undecodable), (truncated, .undecodable), (badEnum, .wrongType), (wrongWire, .undecodable),
            (Self.framed(1, Self.sparse) + [0x80], .undecodable), (Self.framed(1, Self.sparse) + [3], .undecodable),
            (Self.framed(2, Self.sparse), .schemaUnavailable), (Self.framed(99, Self.sparse), .schemaUnavailable),
            (Self.framed(3, Self.sparse), .schemaMismatch), (Self.framed(4, Self.sparse), .schemaMismatch),
            (Self.framed(1, indexes: [0, 7], Self.sparse), .schemaMismatch), (Self.framed(1, [8, 7, 50, 10, 8, 128, 128, 128, 128, 128, 128, 128, 128, 64]), .timestampOutOfRange),
        ]
        for (i, (bytes, reason)) in cases.enumerated() {
            let r = bytes.withUnsafeBytes { d.decode($0, into: &batch) }
            #expect(r?.reason == reason, "case \(i): \(String(describing: r))")
            #expect(batch.count == 1 && batch.columns.allSatisfy { $0.count == 1 }, "case \(i)")
        }
        var other = ColumnBatch(schema: tagsAsValue.schema.types)
        #expect(Self.framed(1, Self.full).withUnsafeBytes { tagsAsValue.decode($0, into: &other) }?.reason == .schemaMismatch)
    }

    @Test("mutated messages never crash: a row or a rejection, nothing in between", arguments: 0..<4)
    func mutations(seed: Int) throws {
        var d = try decoder()
        expectMutationsRowOrRejection(&d, seed: UInt64(seed) &+ 500) { i in Self.framed(1, i % 2 == 0 ? Self.full : Self.sparse) }
    }
}
