import TesseraCore
import TesseraTopology

/// Writer schemas by id, as a schema registry holds them (`SchemaRegistry` in the engine fetches
/// and caches them; the worker fetches a batch's unknown ids before it decodes the batch).
public protocol SchemaLookup: Sendable {
    /// The schema registered under `id`: its text, or why there is none (the registry answered
    /// that it does not have it). Nil when it was not fetched.
    func schema(id: UInt32) -> Result<RegisteredSchema, SchemaUnavailable>?
}

public struct RegisteredSchema: Sendable, Hashable {
    public enum Kind: String, Sendable { case avro = "AVRO", protobuf = "PROTOBUF", json = "JSON" }
    public var kind: Kind
    /// Avro: the schema's JSON. Protobuf: the file's serialized `FileDescriptorProto`, base64.
    public var text: String
    /// Protobuf: the files it imports (and theirs), serialized and base64 like `text`.
    public var references: [String]

    public init(kind: Kind, text: String, references: [String] = []) {
        self.kind = kind
        self.text = text
        self.references = references
    }
}

public struct SchemaUnavailable: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The Confluent wire format: a zero byte, the schema id (4 bytes, big-endian), the encoded value.
public enum RegistryFraming {
    /// The schema id a payload names, or nil when it is not in the wire format.
    @inline(__always)
    public static func schemaID(_ payload: UnsafeRawBufferPointer) -> UInt32? {
        guard payload.count >= 5, payload[0] == 0 else { return nil }
        return UInt32(payload[1]) << 24 | UInt32(payload[2]) << 16 | UInt32(payload[3]) << 8 | UInt32(payload[4])
    }
}

/// Decodes Avro events in the Confluent wire format straight into a source's column batch, by
/// Avro's schema resolution from the writer's schema (the one the record names) to the fields the
/// source declares: fields the writer has and the source does not are skipped, fields the source
/// declares and the writer lacks are null (a field with a default in a later writer schema is read
/// as that schema writes it), unions with null read as the branch written, `int` and `long` read as
/// int64 and as float64, `float` and `double` as float64, `enum` as its symbol's text, `bytes` as
/// UTF-8 text, logical types as their underlying value (`timestamp-millis` is a long of ms: the
/// source's timestamp unit must say so), and `decimal` as the float64 nearest the exact value
/// (unscaled integer × 10^-scale, rounded once). A path (`order.amount`) goes through records.
///
/// A payload not in the wire format, or not decodable under its schema, is rejected as
/// `undecodable`; a schema the registry does not have as `schema_unavailable`; a writer schema
/// the source cannot read (a declared field of a type that does not resolve, a timestamp in
/// another unit) as `schema_mismatch`. Each schema id is resolved once and its program kept.
public struct AvroEventDecoder: Sendable {
    public let schema: Schema
    public let timestamp: TimeField
    public let maxBytes: Int
    let fields: PayloadFields
    private let schemas: any SchemaLookup
    private var programs: [UInt32: Result<AvroProgram, Rejection>] = [:]
    /// The program of the last event's schema id.
    private var last: (id: UInt32, program: AvroProgram)?
    private var slots: [DecodedSlot]

    public init(source: Source, schemas: any SchemaLookup, maxBytes: Int = 1 << 20) {
        schema = source.schema
        timestamp = source.timestamp
        self.maxBytes = maxBytes
        self.schemas = schemas
        fields = PayloadFields(source: source)
        slots = Array(repeating: DecodedSlot(), count: fields.slotCount)
    }

    /// Decodes one payload and appends its row to `batch`, or returns why the event is rejected
    /// (and appends nothing); the record's own fields are left to the caller, as in `JSONEventDecoder`.
    public mutating func decode(_ payload: UnsafeRawBufferPointer, into batch: inout ColumnBatch) -> Rejection? {
        guard payload.count <= maxBytes else { return Rejection(.oversized, "\(payload.count) bytes, the limit is \(maxBytes)") }
        guard let id = RegistryFraming.schemaID(payload) else {
            return Rejection(.undecodable, "not in the schema registry's wire format (a zero byte, then a 4-byte schema id)")
        }
        let program: AvroProgram
        if let last, last.id == id {
            program = last.program  // a topic's records name the same schema, run after run
        } else {
            switch programs[id] ?? resolve(id) {
            case .success(let p):
                program = p
                last = (id, p)
            case .failure(let r): return r
            }
        }
        for i in slots.indices { slots[i].kind = .absent }
        var reader = AvroReader(payload, from: 5)
        do throws(Rejection) {
            try program.root.read(&reader, into: &slots)
            guard reader.atEnd else { throw Rejection(.undecodable, "\(payload.count - reader.position) bytes after the value") }
        } catch {
            return error
        }
        return fields.append(slots, payload: payload, symbols: program.symbols, timestamp: timestamp, into: &batch)
    }

    private mutating func resolve(_ id: UInt32) -> Result<AvroProgram, Rejection> {
        let result: Result<AvroProgram, Rejection>
        switch schemas.schema(id: id) {
        case nil:
            result = .failure(Rejection(.schemaUnavailable, "schema \(id) was not fetched from the registry"))
            return result  // not kept: it may be fetched later
        case .failure(let e)?:
            result = .failure(Rejection(.schemaUnavailable, "schema \(id): \(e.description)"))
        case .success(let registered)?:
            guard registered.kind == .avro else {
                result = .failure(Rejection(.schemaMismatch, "schema \(id) is \(registered.kind.rawValue), the source reads Avro"))
                break
            }
            do {
                let writer = try AvroSchema.parse(registered.text)
                result = .success(try AvroProgram(writer: writer, fields: fields, timestamp: timestamp))
            } catch {
                result = .failure(Rejection(.schemaMismatch, "schema \(id): \(error.description)"))
            }
        }
        programs[id] = result
        return result
    }
}

