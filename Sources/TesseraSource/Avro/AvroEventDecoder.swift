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
    public var text: String

    public init(kind: Kind, text: String) {
        self.kind = kind
        self.text = text
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
    private var slots: [AvroSlot]

    public init(source: Source, schemas: any SchemaLookup, maxBytes: Int = 1 << 20) {
        schema = source.schema
        timestamp = source.timestamp
        self.maxBytes = maxBytes
        self.schemas = schemas
        fields = PayloadFields(source: source)
        slots = Array(repeating: AvroSlot(), count: fields.slotCount)
    }

    /// Decodes one payload and appends its row to `batch`, or returns why the event is rejected
    /// (and appends nothing); the record's own fields are left to the caller, as in `JSONEventDecoder`.
    public mutating func decode(_ payload: UnsafeRawBufferPointer, into batch: inout ColumnBatch) -> Rejection? {
        guard payload.count <= maxBytes else { return Rejection(.oversized, "\(payload.count) bytes, the limit is \(maxBytes)") }
        guard let id = RegistryFraming.schemaID(payload) else {
            return Rejection(.undecodable, "not in the schema registry's wire format (a zero byte, then a 4-byte schema id)")
        }
        let program: AvroProgram
        switch programs[id] ?? resolve(id) {
        case .success(let p): program = p
        case .failure(let r): return r
        }
        for i in slots.indices { slots[i].kind = .absent }
        var reader = AvroReader(payload, from: 5)
        do throws(Rejection) {
            try program.root.read(&reader, into: &slots)
            guard reader.atEnd else { throw Rejection(.undecodable, "\(payload.count - reader.position) bytes after the value") }
        } catch {
            return error
        }
        var eventTime: Micros = 0
        if fields.timestampInPayload {
            let slot = slots[fields.timestampSlot]
            switch slot.kind {
            case .absent, .null: return Rejection(.missingTimestamp, "no '\(timestamp.field)' field")
            case .int:
                let (t, overflow) = Int64(bitPattern: slot.bits).multipliedReportingOverflow(by: fields.timestampScale)
                guard !overflow else { return Rejection(.timestampOutOfRange, "'\(timestamp.field)' = \(Int64(bitPattern: slot.bits)) overflows") }
                eventTime = t
            case .string:
                let text = payload[slot.start..<slot.end]
                guard timestamp.unit == .rfc3339, let t = RFC3339.parse(Array(text)) else {
                    return Rejection(.wrongType, "'\(timestamp.field)' is not an RFC 3339 timestamp: \(String(decoding: text.prefix(64), as: UTF8.self))")
                }
                eventTime = t
            case .double, .bool, .symbol:
                return Rejection(.wrongType, "'\(timestamp.field)' must be a number of \(timestamp.unit.rawValue) since the epoch")
            }
            guard PartitionAggregator.validTimes.contains(eventTime) else {
                return Rejection(.timestampOutOfRange, "'\(timestamp.field)' is \(eventTime) µs, outside years 0001–9999")
            }
        }
        // Strings are valid UTF-8 (Avro's strings and the bytes read as text).
        for (s, c) in fields.columns.enumerated() where slots[s].kind == .string {
            guard UTF8Validation.isValid(UnsafeRawBufferPointer(rebasing: payload[slots[s].start..<slots[s].end])) else {
                return Rejection(.invalidUTF8, "'\(schema.names[c])' is not valid UTF-8")
            }
        }
        if fields.timestampInPayload { batch.eventTimes.append(eventTime) }
        for (s, c) in fields.columns.enumerated() {
            let slot = slots[s]
            switch slot.kind {
            case .absent, .null: batch.columns[c].appendNull()
            case .int:
                if schema.types[c] == .float64 { batch.columns[c].append(double: Double(Int64(bitPattern: slot.bits))) }
                else { batch.columns[c].append(int: Int64(bitPattern: slot.bits)) }
            case .double: batch.columns[c].append(double: Double(bitPattern: slot.bits))
            case .bool: batch.columns[c].append(bool: slot.bits != 0)
            case .string:
                payload.withMemoryRebound(to: UInt8.self) { b in
                    batch.columns[c].append(utf8: UnsafeBufferPointer(rebasing: b[slot.start..<slot.end]))
                }
            case .symbol: batch.columns[c].append(string: program.symbols[Int(slot.bits)])
            }
        }
        return nil
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

/// The payload fields of a source, as decoders of structured payloads address them: each a slot
/// (in declaration order) at a path; the event time's slot, an extra one when it is not declared.
struct PayloadFields: Sendable {
    /// The column of each declared payload field's slot.
    let columns: [Int]
    let paths: [[String]]
    let types: [ValueType]
    /// Slots in all: the declared ones, plus the event time's when it is not declared.
    let slotCount: Int
    let timestampInPayload: Bool
    let timestampSlot: Int
    /// µs per unit of a numeric event time.
    let timestampScale: Int64

    init(source: Source) {
        var columns: [Int] = [], paths: [[String]] = [], types: [ValueType] = []
        for c in source.schema.names.indices {
            guard let path = source.origin(c).path else { continue }
            columns.append(c)
            paths.append(path)
            types.append(source.schema.types[c])
        }
        let declared = source.schema.index(of: source.timestamp.field)
        if let declared, let slot = columns.firstIndex(of: declared) {
            timestampSlot = slot
            timestampInPayload = true
        } else if declared == nil {
            timestampSlot = columns.count
            paths.append([source.timestamp.field])
            types.append(source.timestamp.unit == .rfc3339 ? .string : .int64)
            timestampInPayload = true
        } else {
            timestampSlot = -1
            timestampInPayload = false
        }
        self.columns = columns
        self.paths = paths
        self.types = types
        slotCount = paths.count
        switch source.timestamp.unit {
        case .seconds: timestampScale = 1_000_000
        case .milliseconds: timestampScale = 1_000
        case .microseconds, .rfc3339: timestampScale = 1
        }
    }
}

/// What a decoder read for a slot: an integer, a double's bits, a bool, text in the payload, or
/// an enum symbol (an index into the program's symbols).
struct AvroSlot: Sendable {
    enum Kind: UInt8, Sendable { case absent, null, int, double, bool, string, symbol }
    var kind: Kind = .absent
    var bits: UInt64 = 0
    var start = 0
    var end = 0
}
