import Foundation
import FuzzSupport
import TesseraCore
import TesseraSource
import TesseraTopology

// libFuzzer target: every input is one Kafka payload in the schema registry's Protobuf wire
// format (the schema id, the message-index list, the message), decoded by a Protobuf decoder whose
// registry holds one file (every scalar encoding, an enum, a Timestamp, a wrapper, a nested
// message, a repeated field, a second message). Besides "never crashes, never hangs", each decode
// must append exactly one row or nothing, agree with a fresh decoder, and accept only event times
// inside years 0001–9999 and valid UTF-8.

/// shop/order.proto as a serialized FileDescriptorProto (Tests/TesseraSourceTests/ProtobufDecoderTests.swift says what it holds).
let file = "ChBzaG9wL29yZGVyLnByb3RvEgRzaG9wGh9nb29nbGUvcHJvdG9idWYvdGltZXN0YW1wLnByb3RvGh5nb29nbGUvcHJvdG9idWYvd3JhcHBlcnMucHJvdG8i2QIKBU9yZGVyEhAKCG9yZGVyX2lkGAEgASgDEg8KB3VzZXJfaWQYAiABKBISEgoKcHJvZHVjdF9pZBgDIAEoDRIOCgZhbW91bnQYBCABKAESHAoGc3RhdHVzGAUgASgOMgwuc2hvcC5TdGF0dXMSLgoKZXZlbnRfdGltZRgGIAEoCzIaLmdvb2dsZS5wcm90b2J1Zi5UaW1lc3RhbXASEwoGY291cG9uGAcgASgJSACIAQESHgoEaXRlbRgIIAEoCzIQLnNob3AuT3JkZXIuSXRlbRIMCgR0YWdzGAkgAygJEgwKBGdpZnQYCiABKAgSLgoIZGlzY291bnQYCyABKAsyHC5nb29nbGUucHJvdG9idWYuRG91YmxlVmFsdWUaLwoESXRlbRILCgNza3UYASABKAkSCwoDcXR5GAIgASgHEg0KBXByaWNlGAMgASgCQgkKB19jb3Vwb24iEgoFT3RoZXISCQoBeBgBIAEoBSovCgZTdGF0dXMSCAoEUEFJRBAAEgwKCFJFRlVOREVEEAESDQoJQ0FOQ0VMTEVEEAJiBnByb3RvMw=="

struct Registry: SchemaLookup {
    func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>? {
        switch id {
        case 1: return .success(RegisteredSchema(kind: .protobuf, text: file))
        case 2: return .failure(SchemaUnavailable("the registry has no schema 2"))
        case 3: return .success(RegisteredSchema(kind: .protobuf, text: "not base64"))
        default: return nil
        }
    }
}

let source: Source = {
    let yaml = """
        team: t
        sources:
          - name: s
            topic: s
            format: protobuf
            schema_registry: {url: http://registry:8081}
            timestamp: {field: event_time, unit: ms}
            fields: {order_id: int64, user_id: int64, product_id: float64, amount: float64, status: string, event_time: int64,
                     coupon: string, sku: {type: string, path: item.sku}, qty: {type: int64, path: item.qty}, gift: bool, discount: float64}
        entities: [{name: user, join_keys: {user_id: int64}}]
        feature_views: [{name: v, entities: [user], source: s, features: [{name: n, aggregate: count, window: 1h}]}]
        """
    guard let s = try? TopologyLoader.parse(yaml: yaml, file: "fuzz.yaml").get().sources[0] else { fatalError("the fuzz topology does not load") }
    return s
}()

let template = ProtobufEventDecoder(source: source, schemas: Registry(), maxBytes: 1 << 16)
// libFuzzer runs one input at a time, on one thread.
nonisolated(unsafe) var decoder = template
nonisolated(unsafe) var batch = ColumnBatch(schema: source.schema.types)

func protobufSeeds() -> [(name: String, bytes: [UInt8])] {
    let full: [UInt8] = [8, 217, 215, 55, 16, 209, 15, 24, 52, 33, 0, 0, 0, 0, 0, 192, 66, 64, 40, 1, 50, 11, 8, 128, 242, 214, 202, 6, 16, 149, 154, 239, 58, 58, 4, 83, 65, 86, 69, 66, 17, 10, 5, 115, 107, 117, 45, 49, 21, 3, 0, 0, 0, 29, 0, 0, 32, 64, 74, 1, 97, 74, 1, 98, 80, 1, 90, 9, 9, 0, 0, 0, 0, 0, 0, 208, 63]
    let sparse: [UInt8] = [8, 7, 50, 6, 8, 129, 242, 214, 202, 6]
    let framing: [UInt8] = [0, 0, 0, 0, 1, 0]
    return [("full", framing + full), ("sparse", framing + sparse), ("item", [0, 0, 0, 0, 1, 4, 0, 0, 10, 2, 115, 49]),
            ("other", [0, 0, 0, 0, 1, 2, 2, 8, 5]), ("unknown", [0, 0, 0, 0, 2, 0] + sparse), ("bad-schema", [0, 0, 0, 0, 3, 0] + sparse)]
}

let protobufDictionary: [String] = ["\u{0}\u{0}\u{0}\u{0}\u{1}\u{0}", "\u{0}\u{0}\u{0}\u{0}\u{1}\u{2}\u{2}", "\u{8}", "\u{10}", "\u{18}",
                                    "\u{21}", "\u{28}", "\u{32}", "\u{3A}", "\u{42}", "\u{4A}", "\u{50}", "\u{5A}", "\u{80}\u{1}"]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    writeSeedsIfAsked(seeds: protobufSeeds, dictionary: protobufDictionary)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProtobuf(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    checkDecode(&decoder, template: template, batch: &batch, UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size))
    return 0
}
