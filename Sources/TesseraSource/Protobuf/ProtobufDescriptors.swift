import Foundation
import TesseraCore

/// Protobuf message and enum definitions, read from serialized `FileDescriptorProto`s (what a
/// schema registry gives with `format=serialized`, and what `protoc --descriptor_set_out` writes
/// as a `FileDescriptorSet`): `google/protobuf/descriptor.proto`'s field numbers, read with the
/// wire reader below — no generated code, no protobuf library.
struct ProtoSchema: Sendable {
    struct Message: Sendable {
        /// Full name, without the leading dot (`shop.Order`).
        var name: String
        var fields: [Field]
        /// Nested messages' full names, in declaration order (message indexes walk these).
        var nested: [String]
        var isMapEntry: Bool
    }

    struct Field: Sendable {
        var name: String
        var number: Int
        var repeated: Bool
        /// `FieldDescriptorProto.Type`: 1 double … 18 sint64.
        var type: Int
        /// For messages and enums: the full name, without the leading dot.
        var typeName: String
        /// Whether an absent value is null (proto2 fields, proto3 `optional`, messages, oneof
        /// members) rather than the type's default (proto3 scalars).
        var hasPresence: Bool
    }

    struct Enumeration: Sendable {
        var name: String
        var values: [(name: String, number: Int32)]
    }

    var messages: [String: Message] = [:]
    var enums: [String: Enumeration] = [:]
    /// Each file's top-level messages, in order, by file name.
    var fileMessages: [String: [String]] = [:]

    struct Invalid: Error, CustomStringConvertible, Sendable { var description: String }

    /// The well-known types Tessera reads without their files (serializers skip registering them).
    static let wellKnown: [String: Message] = {
        var m: [String: Message] = [:]
        func scalar(_ name: String, _ type: Int) {
            m[name] = Message(name: name, fields: [Field(name: "value", number: 1, repeated: false, type: type, typeName: "", hasPresence: false)],
                              nested: [], isMapEntry: false)
        }
        m["google.protobuf.Timestamp"] = Message(name: "google.protobuf.Timestamp", fields: [
            Field(name: "seconds", number: 1, repeated: false, type: 3, typeName: "", hasPresence: false),
            Field(name: "nanos", number: 2, repeated: false, type: 5, typeName: "", hasPresence: false),
        ], nested: [], isMapEntry: false)
        scalar("google.protobuf.DoubleValue", 1); scalar("google.protobuf.FloatValue", 2); scalar("google.protobuf.Int64Value", 3)
        scalar("google.protobuf.UInt64Value", 4); scalar("google.protobuf.Int32Value", 5); scalar("google.protobuf.BoolValue", 8)
        scalar("google.protobuf.StringValue", 9); scalar("google.protobuf.BytesValue", 12); scalar("google.protobuf.UInt32Value", 13)
        return m
    }()

    init() {
        messages = ProtoSchema.wellKnown
    }

    /// Adds the definitions of one serialized `FileDescriptorProto`; returns the file's name.
    @discardableResult
    mutating func add(file bytes: [UInt8]) throws(Invalid) -> String {
        var r = ProtoWire(bytes)
        var name = "", package = "", syntax = ""
        var messageBytes: [ArraySlice<UInt8>] = [], enumBytes: [ArraySlice<UInt8>] = []
        while let (number, wire) = try r.tag() {
            switch (number, wire) {
            case (1, 2): name = try r.string()
            case (2, 2): package = try r.string()
            case (4, 2): messageBytes.append(try r.bytes())
            case (5, 2): enumBytes.append(try r.bytes())
            case (12, 2): syntax = try r.string()
            default: try r.skip(wire)
            }
        }
        let prefix = package.isEmpty ? "" : package + "."
        let proto3 = syntax == "proto3"
        var top: [String] = []
        for m in messageBytes { top.append(try addMessage(m, prefix: prefix, proto3: proto3)) }
        for e in enumBytes { try addEnum(e, prefix: prefix) }
        fileMessages[name] = top
        return name
    }

    /// Adds every file of a serialized `FileDescriptorSet`.
    mutating func add(set bytes: [UInt8]) throws(Invalid) {
        var r = ProtoWire(bytes)
        while let (number, wire) = try r.tag() {
            if number == 1 && wire == 2 { try add(file: Array(try r.bytes())) } else { try r.skip(wire) }
        }
    }

    private mutating func addMessage(_ bytes: ArraySlice<UInt8>, prefix: String, proto3: Bool) throws(Invalid) -> String {
        var r = ProtoWire(Array(bytes))
        var name = ""
        var fieldBytes: [ArraySlice<UInt8>] = [], nestedBytes: [ArraySlice<UInt8>] = [], enumBytes: [ArraySlice<UInt8>] = []
        var isMapEntry = false
        while let (number, wire) = try r.tag() {
            switch (number, wire) {
            case (1, 2): name = try r.string()
            case (2, 2): fieldBytes.append(try r.bytes())
            case (3, 2): nestedBytes.append(try r.bytes())
            case (4, 2): enumBytes.append(try r.bytes())
            case (7, 2):
                var options = ProtoWire(Array(try r.bytes()))
                while let (n, w) = try options.tag() {
                    if n == 7 && w == 0 { isMapEntry = try options.varint() != 0 } else { try options.skip(w) }
                }
            default: try r.skip(wire)
            }
        }
        let full = prefix + name
        var nested: [String] = []
        for n in nestedBytes { nested.append(try addMessage(n, prefix: full + ".", proto3: proto3)) }
        for e in enumBytes { try addEnum(e, prefix: full + ".") }
        var fields: [Field] = []
        for f in fieldBytes {
            var r = ProtoWire(Array(f))
            var field = Field(name: "", number: 0, repeated: false, type: 0, typeName: "", hasPresence: !proto3)
            var oneof = false, proto3Optional = false
            while let (number, wire) = try r.tag() {
                switch (number, wire) {
                case (1, 2): field.name = try r.string()
                case (3, 0): field.number = Int(try r.varint())
                case (4, 0): field.repeated = try r.varint() == 3
                case (5, 0): field.type = Int(try r.varint())
                case (6, 2): field.typeName = String(try r.string().drop { $0 == "." })
                case (9, 0): _ = try r.varint(); oneof = true
                case (17, 0): proto3Optional = try r.varint() != 0
                default: try r.skip(wire)
                }
            }
            // Messages (11) and groups (10) always have presence; oneof members too.
            if field.type == 11 || field.type == 10 || oneof || proto3Optional { field.hasPresence = true }
            fields.append(field)
        }
        messages[full] = Message(name: full, fields: fields, nested: nested, isMapEntry: isMapEntry)
        return full
    }

    private mutating func addEnum(_ bytes: ArraySlice<UInt8>, prefix: String) throws(Invalid) {
        var r = ProtoWire(Array(bytes))
        var e = Enumeration(name: "", values: [])
        while let (number, wire) = try r.tag() {
            switch (number, wire) {
            case (1, 2): e.name = try r.string()
            case (2, 2):
                var v = ProtoWire(Array(try r.bytes()))
                var value: (name: String, number: Int32) = ("", 0)
                while let (n, w) = try v.tag() {
                    switch (n, w) {
                    case (1, 2): value.name = try v.string()
                    case (2, 0): value.number = Int32(truncatingIfNeeded: try v.varint())
                    default: try v.skip(w)
                    }
                }
                e.values.append(value)
            default: try r.skip(wire)
            }
        }
        e.name = prefix + e.name
        enums[e.name] = e
    }

    /// The message a Confluent message-index list names in a file: the first index into the
    /// file's top-level messages, each next one into the previous message's nested ones.
    func message(file: String, indexes: [Int]) -> Message? {
        guard let first = indexes.first, let top = fileMessages[file], first >= 0, first < top.count, var m = messages[top[first]] else { return nil }
        for i in indexes.dropFirst() {
            guard i >= 0, i < m.nested.count, let next = messages[m.nested[i]] else { return nil }
            m = next
        }
        return m
    }
}

/// A cursor over protocol-buffer wire bytes, every read checked against the end.
struct ProtoWire {
    let data: [UInt8]
    var position = 0

    init(_ data: [UInt8]) { self.data = data }

    /// The next field's number and wire type, or nil at the end.
    mutating func tag() throws(ProtoSchema.Invalid) -> (Int, Int)? {
        guard position < data.count else { return nil }
        let t = try varint()
        guard t >> 3 > 0, t >> 3 <= 536_870_911 else { throw ProtoSchema.Invalid(description: "a field number out of range") }
        return (Int(t >> 3), Int(t & 7))
    }

    mutating func varint() throws(ProtoSchema.Invalid) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while position < data.count, shift < 64 {
            let b = data[position]
            position += 1
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
        throw ProtoSchema.Invalid(description: "a truncated varint")
    }

    mutating func bytes() throws(ProtoSchema.Invalid) -> ArraySlice<UInt8> {
        let n = try varint()
        guard n <= UInt64(data.count - position) else { throw ProtoSchema.Invalid(description: "a length past the end") }
        defer { position += Int(n) }
        return data[position..<position + Int(n)]
    }

    mutating func string() throws(ProtoSchema.Invalid) -> String {
        String(decoding: try bytes(), as: UTF8.self)
    }

    mutating func skip(_ wire: Int) throws(ProtoSchema.Invalid) {
        switch wire {
        case 0: _ = try varint()
        case 1: guard position + 8 <= data.count else { throw ProtoSchema.Invalid(description: "a truncated fixed64") }; position += 8
        case 2: _ = try bytes()
        case 5: guard position + 4 <= data.count else { throw ProtoSchema.Invalid(description: "a truncated fixed32") }; position += 4
        default: throw ProtoSchema.Invalid(description: "wire type \(wire) (groups are not read)")
        }
    }
}
