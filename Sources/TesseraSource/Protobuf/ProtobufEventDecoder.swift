import Foundation
import TesseraCore
import TesseraTopology

/// Decodes Protobuf events straight into a source's column batch: in the schema registry's wire
/// format (a zero byte, the schema id, the message-index list, the message) with the writer's
/// definitions from the registry, or plain messages of one type from a descriptor set file
/// (`protoc --descriptor_set_out`). Declared fields are read by name from the message, at their
/// path through nested messages: integers of every encoding as int64 or float64, `float` and
/// `double` as float64, `bool`, `string`, `bytes` as UTF-8 text, an enum as its value's name (a
/// number the definition does not name is `wrong_type`), `google.protobuf.Timestamp` as
/// the source's timestamp unit, and the wrapper types (`Int64Value`, …) as their value. A proto3
/// scalar without presence that the message leaves out reads as its default (0, "", false, the
/// first enum value); a field with presence (a message, `optional`, a oneof member, proto2) as null.
///
/// Rejections are those of `AvroEventDecoder`: `undecodable`, `schema_unavailable`,
/// `schema_mismatch` (a declared field of a type that does not resolve, a repeated field, a path
/// through a scalar), plus `wrong_type` for a uint64 beyond int64's range.
public struct ProtobufEventDecoder: Sendable {
    public let schema: Schema
    public let timestamp: TimeField
    public let maxBytes: Int
    let fields: PayloadFields
    private let lookup: (any SchemaLookup)?
    /// Programs by schema id and message indexes (registry), or the one program (descriptor set).
    private var programs: [ProgramKey: Result<ProtoProgram, Rejection>] = [:]
    private let fixed: Result<ProtoProgram, Rejection>?
    /// The program of the last event's schema id and message.
    private var last: (key: ProgramKey, program: ProtoProgram)?
    private var slots: [DecodedSlot]
    private var indexes: [Int] = []

    struct ProgramKey: Hashable {
        var id: UInt32
        var indexes: [Int]
    }

    /// Messages in the registry's wire format, their definitions from `schemas`.
    public init(source: Source, schemas: any SchemaLookup, maxBytes: Int = 1 << 20) {
        schema = source.schema
        timestamp = source.timestamp
        self.maxBytes = maxBytes
        lookup = schemas
        fields = PayloadFields(source: source)
        slots = Array(repeating: DecodedSlot(), count: fields.slotCount)
        fixed = nil
    }

    /// Plain messages of type `message`, defined by a serialized `FileDescriptorSet`.
    public init(source: Source, descriptorSet: [UInt8], message: String, maxBytes: Int = 1 << 20) throws(ProtobufSchemaError) {
        schema = source.schema
        timestamp = source.timestamp
        self.maxBytes = maxBytes
        lookup = nil
        fields = PayloadFields(source: source)
        slots = Array(repeating: DecodedSlot(), count: fields.slotCount)
        var definitions = ProtoSchema()
        do { try definitions.add(set: descriptorSet) } catch { throw ProtobufSchemaError(description: "the descriptor set is not one: \(error.description)") }
        guard let m = definitions.messages[message] else {
            throw ProtobufSchemaError(description: "the descriptor set has no message \(message) (it has \(definitions.messages.keys.filter { !$0.hasPrefix("google.protobuf.") }.sorted().joined(separator: ", ")))")
        }
        let program = ProtoProgram(message: m, schema: definitions, fields: fields, timestamp: timestamp)
        if let problem = program.problem { throw ProtobufSchemaError(description: problem) }
        fixed = .success(program)
    }

    public mutating func decode(_ payload: UnsafeRawBufferPointer, into batch: inout ColumnBatch) -> Rejection? {
        guard payload.count <= maxBytes else { return Rejection(.oversized, "\(payload.count) bytes, the limit is \(maxBytes)") }
        let program: ProtoProgram
        var start = 0
        if let fixed {
            switch fixed {
            case .success(let p): program = p
            case .failure(let r): return r
            }
        } else {
            guard let id = RegistryFraming.schemaID(payload) else {
                return Rejection(.undecodable, "not in the schema registry's wire format (a zero byte, then a 4-byte schema id)")
            }
            var reader = ProtoReader(payload, from: 5, to: payload.count)
            indexes.removeAll(keepingCapacity: true)
            do throws(Rejection) {
                let count = Varint.unzigzag(try reader.varint())
                guard count >= 0, count <= 64 else { throw Rejection(.undecodable, "a message-index list of \(count)") }
                if count == 0 { indexes.append(0) }
                for _ in 0..<count { indexes.append(Int(clamping: Varint.unzigzag(try reader.varint()))) }
            } catch {
                return error
            }
            start = reader.position
            if let last, last.key.id == id, last.key.indexes == indexes {
                program = last.program  // a topic's records name the same message, run after run
            } else {
                let key = ProgramKey(id: id, indexes: indexes)
                switch programs[key] ?? resolve(key) {
                case .success(let p):
                    program = p
                    last = (key, p)
                case .failure(let r): return r
                }
            }
        }
        for i in slots.indices { slots[i].kind = .absent }
        var reader = ProtoReader(payload, from: start, to: payload.count)
        do throws(Rejection) {
            try program.root.read(&reader, into: &slots, program: program, depth: 0)
        } catch {
            return error
        }
        return fields.append(slots, payload: payload, symbols: program.symbols, timestamp: timestamp, into: &batch)
    }

    private mutating func resolve(_ key: ProgramKey) -> Result<ProtoProgram, Rejection> {
        let result: Result<ProtoProgram, Rejection>
        switch lookup?.schema(id: key.id) {
        case nil:
            return .failure(Rejection(.schemaUnavailable, "schema \(key.id) was not fetched from the registry"))  // not kept
        case .failure(let e)?:
            result = .failure(Rejection(.schemaUnavailable, "schema \(key.id): \(e.description)"))
        case .success(let registered)?:
            result = ProtobufEventDecoder.program(registered, key: key, fields: fields, timestamp: timestamp)
        }
        programs[key] = result
        return result
    }

    static func program(_ registered: RegisteredSchema, key: ProgramKey, fields: PayloadFields, timestamp: TimeField) -> Result<ProtoProgram, Rejection> {
        guard registered.kind == .protobuf else {
            return .failure(Rejection(.schemaMismatch, "schema \(key.id) is \(registered.kind.rawValue), the source reads Protobuf"))
        }
        var definitions = ProtoSchema()
        let file: String
        do throws(ProtoSchema.Invalid) {
            for reference in registered.references {
                guard let bytes = Data(base64Encoded: reference) else { throw ProtoSchema.Invalid(description: "a reference is not a serialized descriptor") }
                try definitions.add(file: Array(bytes))
            }
            guard let bytes = Data(base64Encoded: registered.text) else {
                throw ProtoSchema.Invalid(description: "it is not a serialized descriptor (base64): the registry must answer format=serialized")
            }
            file = try definitions.add(file: Array(bytes))
        } catch {
            return .failure(Rejection(.schemaMismatch, "schema \(key.id): \(error.description)"))
        }
        guard let message = definitions.message(file: file, indexes: key.indexes) else {
            return .failure(Rejection(.schemaMismatch, "schema \(key.id) has no message at indexes \(key.indexes)"))
        }
        let program = ProtoProgram(message: message, schema: definitions, fields: fields, timestamp: timestamp)
        if let problem = program.problem { return .failure(Rejection(.schemaMismatch, "schema \(key.id): \(problem)")) }
        return .success(program)
    }
}

public struct ProtobufSchemaError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
