import Foundation
import FuzzSupport
import TesseraCore
import TesseraSource
import TesseraTopology

// libFuzzer target: every input is one Kafka payload in the schema registry's wire format, decoded
// by an Avro decoder whose registry holds schemas with every kind of Avro type (records nested and
// named, unions, enums, arrays and maps in blocks of either sign, fixed, decimals, logical types).
// Besides "never crashes, never hangs", each decode must keep these properties:
//
// - it appends exactly one row, or returns a rejection and appends nothing (every column too);
// - a long-lived decoder (its resolved programs kept) and a fresh one agree on the outcome and on
//   every value of the row;
// - an accepted row has its event time inside years 0001–9999 and only valid UTF-8 strings.

/// The writer schemas of the registry, by id (the first byte after the framing's zero picks one
/// of them in the seeds; the fuzzer reaches the others through the dictionary).
let schemas: [UInt32: String] = [
    1: """
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [
          {"name": "order_id", "type": "long"}, {"name": "user_id", "type": "long"}, {"name": "product_id", "type": "int"},
          {"name": "amount", "type": "double"},
          {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["paid", "refunded", "cancelled"]}},
          {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "lines", "type": {"type": "array", "items": {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}, {"name": "n", "type": "float"}]}}},
          {"name": "labels", "type": {"type": "map", "values": "Status"}}]}
        """,
    2: """
        {"type": "record", "name": "Order", "namespace": "shop", "fields": [
          {"name": "order_id", "type": "long"}, {"name": "coupon", "type": ["null", "string", "bytes"]},
          {"name": "user_id", "type": ["null", "long"]}, {"name": "product_id", "type": "long"},
          {"name": "amount", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 3}]},
          {"name": "event_timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "hash", "type": {"type": "fixed", "name": "H", "size": 4}}, {"name": "ok", "type": "boolean"},
          {"name": "status", "type": ["string", "null"]}]}
        """,
    3: """
        {"type": "record", "name": "Wrapped", "fields": [
          {"name": "meta", "type": {"type": "record", "name": "M", "fields": [{"name": "v", "type": "int"}]}},
          {"name": "order_id", "type": "int"}, {"name": "user_id", "type": "int"}, {"name": "amount", "type": "float"},
          {"name": "status", "type": "bytes"},
          {"name": "nested", "type": {"type": "array", "items": {"type": "map", "values": ["null", "double", {"type": "array", "items": "M"}]}}},
          {"name": "event_timestamp", "type": "long"}]}
        """,
    4: """
        {"type": "record", "name": "Mismatch", "fields": [{"name": "amount", "type": "string"}, {"name": "event_timestamp", "type": "long"}]}
        """,
]

struct Registry: SchemaLookup {
    func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? {
        if let text = schemas[id] { return .success(RegisteredSchema(kind: .avro, text: text)) }
        return id == 5 ? .failure(SchemaUnavailable("the registry has no schema 5")) : nil
    }
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

let source: Source = {
    let path = root.appendingPathComponent("topologies/growth.yaml").path
    guard let s = try? TopologyLoader.load(files: [path]).first?.source(named: "orders") else { fatalError("cannot load \(path)") }
    return s
}()

let template = AvroEventDecoder(source: source, schemas: Registry(), maxBytes: 1 << 16)
// libFuzzer runs one input at a time, on one thread.
nonisolated(unsafe) var decoder = template
nonisolated(unsafe) var batch = ColumnBatch(schema: source.schema.types)

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    writeSeedsIfAsked(seeds: avroSeeds, dictionary: avroDictionary)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAvro(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    checkDecode(&decoder, template: template, batch: &batch, UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size))
    return 0
}
