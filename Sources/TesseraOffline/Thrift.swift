// Thrift compact protocol: the encoding of every Parquet footer and page header.
//
// Only what Parquet metadata needs is modelled: structs with field-id deltas, bool fields carried
// in the type nibble, zigzag varint integers, binary/string, lists. Unknown fields of any type
// (including sets and maps) are skipped so that files from newer writers remain readable.

import TesseraCore

/// Compact-protocol type ids as they appear in field headers and collection headers.
enum ThriftType {
    static let stop: UInt8 = 0
    static let boolTrue: UInt8 = 1
    static let boolFalse: UInt8 = 2
    static let byte: UInt8 = 3
    static let i16: UInt8 = 4
    static let i32: UInt8 = 5
    static let i64: UInt8 = 6
    static let double: UInt8 = 7
    static let binary: UInt8 = 8
    static let list: UInt8 = 9
    static let set: UInt8 = 10
    static let map: UInt8 = 11
    static let structure: UInt8 = 12
}

// MARK: - Encoder

/// Appends compact-protocol bytes to `bytes`. Structs nest with `beginStruct`/`endStruct`.
struct ThriftWriter {
    var bytes: [UInt8] = []
    private var lastField: Int16 = 0
    private var stack: [Int16] = []

    init() {}

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        lastField = 0
        stack.removeAll(keepingCapacity: true)
    }

    mutating func varint(_ value: UInt64) { Varint.append(value, to: &bytes) }

    mutating func zigzag(_ value: Int64) { varint(Varint.zigzag(value)) }

    private mutating func fieldHeader(_ id: Int16, _ type: UInt8) {
        let delta = Int(id) - Int(lastField)
        if delta > 0 && delta <= 15 {
            bytes.append(UInt8(delta) << 4 | type)
        } else {
            bytes.append(type)
            zigzag(Int64(id))
        }
        lastField = id
    }

    mutating func field(_ id: Int16, i32 value: Int32) {
        fieldHeader(id, ThriftType.i32)
        zigzag(Int64(value))
    }

    mutating func field(_ id: Int16, i64 value: Int64) {
        fieldHeader(id, ThriftType.i64)
        zigzag(value)
    }

    mutating func field(_ id: Int16, i16 value: Int16) {
        fieldHeader(id, ThriftType.i16)
        zigzag(Int64(value))
    }

    mutating func field(_ id: Int16, i8 value: Int8) {
        fieldHeader(id, ThriftType.byte)
        bytes.append(UInt8(bitPattern: value))
    }

    mutating func field(_ id: Int16, bool value: Bool) {
        fieldHeader(id, value ? ThriftType.boolTrue : ThriftType.boolFalse)
    }

    mutating func field<C: Collection>(_ id: Int16, binary value: C) where C.Element == UInt8 {
        fieldHeader(id, ThriftType.binary)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func field(_ id: Int16, string value: String) {
        field(id, binary: value.utf8)
    }

    /// Starts a struct-typed field; close it with `endStruct()`.
    mutating func beginStruct(_ id: Int16) {
        fieldHeader(id, ThriftType.structure)
        stack.append(lastField)
        lastField = 0
    }

    /// Starts a struct that is an element of a list; close it with `endStruct()`.
    mutating func beginListStruct() {
        stack.append(lastField)
        lastField = 0
    }

    mutating func endStruct() {
        bytes.append(ThriftType.stop)
        lastField = stack.popLast() ?? 0
    }

    /// Ends the outermost struct (the one the writer started in).
    mutating func finish() {
        bytes.append(ThriftType.stop)
    }

    /// Starts a list field of `count` elements of `elementType`; write the elements right after.
    mutating func beginList(_ id: Int16, elementType: UInt8, count: Int) {
        fieldHeader(id, ThriftType.list)
        if count < 15 {
            bytes.append(UInt8(count) << 4 | elementType)
        } else {
            bytes.append(0xF0 | elementType)
            varint(UInt64(count))
        }
    }

    mutating func element(i32 value: Int32) { zigzag(Int64(value)) }

    mutating func element<C: Collection>(binary value: C) where C.Element == UInt8 {
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func element(string value: String) { element(binary: value.utf8) }
}

// MARK: - Decoder

/// Reads compact-protocol bytes from `data[pos..<end]`; every read is bounds-checked and throws
/// `ParquetError` on malformed input.
struct ThriftReader {
    let data: [UInt8]
    private(set) var pos: Int
    let end: Int
    private var lastField: Int16 = 0
    private var stack: [Int16] = []
    private let context: String

    static let maxDepth = 64

    init(_ data: [UInt8], from start: Int = 0, to end: Int? = nil, context: String) {
        self.data = data
        self.pos = start
        self.end = min(end ?? data.count, data.count)
        self.context = context
    }

    func corrupt(_ what: String) -> ParquetError {
        ParquetError("corrupt \(context): \(what)")
    }

    mutating func byte() throws -> UInt8 {
        guard pos < end else { throw corrupt("unexpected end of data at byte \(pos)") }
        let b = data[pos]
        pos += 1
        return b
    }

    mutating func varint() throws -> UInt64 {
        guard let v = try Varint.read({ try byte() }) else { throw corrupt("varint too long") }
        return v
    }

    mutating func zigzag64() throws -> Int64 {
        Varint.unzigzag(try varint())
    }

    mutating func zigzag32() throws -> Int32 {
        let v = try zigzag64()
        guard let r = Int32(exactly: v) else { throw corrupt("32-bit integer out of range") }
        return r
    }

    mutating func bytes(count: Int) throws -> [UInt8] {
        guard count >= 0, count <= end - pos else { throw corrupt("length \(count) exceeds the data") }
        let r = Array(data[pos..<(pos + count)])
        pos += count
        return r
    }

    mutating func binaryValue() throws -> [UInt8] {
        let n = try varint()
        guard n <= UInt64(end - pos) else { throw corrupt("binary length \(n) exceeds the data") }
        return try bytes(count: Int(n))
    }

    mutating func stringValue() throws -> String {
        String(decoding: try binaryValue(), as: UTF8.self)
    }

    // MARK: Structs

    mutating func beginStruct() throws {
        guard stack.count < ThriftReader.maxDepth else { throw corrupt("structures nested too deeply") }
        stack.append(lastField)
        lastField = 0
    }

    /// The next field's id and type, or nil at the struct's end (which also closes the struct).
    mutating func nextField() throws -> (id: Int16, type: UInt8)? {
        let b = try byte()
        if b == ThriftType.stop {
            lastField = stack.popLast() ?? 0
            return nil
        }
        let type = b & 0x0F
        let delta = b >> 4
        let id: Int16
        if delta == 0 {
            let v = try zigzag64()
            guard let v16 = Int16(exactly: v) else { throw corrupt("field id out of range") }
            id = v16
        } else {
            let (sum, overflow) = lastField.addingReportingOverflow(Int16(delta))
            guard !overflow else { throw corrupt("field id out of range") }
            id = sum
        }
        guard type <= ThriftType.structure else { throw corrupt("unknown field type \(type)") }
        lastField = id
        return (id, type)
    }

    // MARK: Typed field values (the type comes from the field header)

    mutating func i32(_ type: UInt8) throws -> Int32 {
        guard type == ThriftType.i32 else { throw corrupt("expected an i32 field, found type \(type)") }
        return try zigzag32()
    }

    mutating func i64(_ type: UInt8) throws -> Int64 {
        // Some writers widen or narrow integer fields; accept any integer type.
        switch type {
        case ThriftType.i64, ThriftType.i32, ThriftType.i16: return try zigzag64()
        default: throw corrupt("expected an i64 field, found type \(type)")
        }
    }

    mutating func i8(_ type: UInt8) throws -> Int8 {
        switch type {
        case ThriftType.byte: return Int8(bitPattern: try byte())
        case ThriftType.i16, ThriftType.i32:
            guard let v = Int8(exactly: try zigzag64()) else { throw corrupt("8-bit integer out of range") }
            return v
        default: throw corrupt("expected an i8 field, found type \(type)")
        }
    }

    func bool(_ type: UInt8) throws -> Bool {
        switch type {
        case ThriftType.boolTrue: return true
        case ThriftType.boolFalse: return false
        default: throw corrupt("expected a bool field, found type \(type)")
        }
    }

    mutating func binary(_ type: UInt8) throws -> [UInt8] {
        guard type == ThriftType.binary else { throw corrupt("expected a binary field, found type \(type)") }
        return try binaryValue()
    }

    mutating func string(_ type: UInt8) throws -> String {
        String(decoding: try binary(type), as: UTF8.self)
    }

    mutating func structBegin(_ type: UInt8) throws {
        guard type == ThriftType.structure else { throw corrupt("expected a struct field, found type \(type)") }
        try beginStruct()
    }

    /// A list header: element type and count. Every element takes at least one byte, which bounds the count.
    mutating func listHeader(_ type: UInt8) throws -> (elementType: UInt8, count: Int) {
        guard type == ThriftType.list || type == ThriftType.set else {
            throw corrupt("expected a list field, found type \(type)")
        }
        return try collectionHeader()
    }

    private mutating func collectionHeader() throws -> (elementType: UInt8, count: Int) {
        let b = try byte()
        let elementType = b & 0x0F
        var count = UInt64(b >> 4)
        if count == 15 { count = try varint() }
        guard elementType <= ThriftType.structure, elementType != ThriftType.stop else {
            throw corrupt("unknown list element type \(elementType)")
        }
        guard count <= UInt64(end - pos) else { throw corrupt("list of \(count) elements exceeds the data") }
        return (elementType, Int(count))
    }

    /// Reads one list element of a bool list (one byte each in the compact protocol).
    mutating func boolElement() throws -> Bool {
        let b = try byte()
        return b == ThriftType.boolTrue
    }

    // MARK: Skipping

    /// Skips a field value of `type` (a field's value when `inCollection` is false, else a collection element).
    mutating func skip(_ type: UInt8, inCollection: Bool = false, depth: Int = 0) throws {
        guard depth < ThriftReader.maxDepth else { throw corrupt("structures nested too deeply") }
        switch type {
        case ThriftType.boolTrue, ThriftType.boolFalse:
            if inCollection { _ = try byte() }
        case ThriftType.byte:
            _ = try byte()
        case ThriftType.i16, ThriftType.i32, ThriftType.i64:
            _ = try varint()
        case ThriftType.double:
            guard end - pos >= 8 else { throw corrupt("unexpected end of data") }
            pos += 8
        case ThriftType.binary:
            let n = try varint()
            guard n <= UInt64(end - pos) else { throw corrupt("binary length exceeds the data") }
            pos += Int(n)
        case ThriftType.list, ThriftType.set:
            let (elementType, count) = try collectionHeader()
            for _ in 0..<count { try skip(elementType, inCollection: true, depth: depth + 1) }
        case ThriftType.map:
            let n = try varint()
            guard n <= UInt64(end - pos) else { throw corrupt("map of \(n) entries exceeds the data") }
            if n > 0 {
                let kv = try byte()
                let keyType = kv >> 4, valueType = kv & 0x0F
                guard keyType != ThriftType.stop, keyType <= ThriftType.structure,
                      valueType != ThriftType.stop, valueType <= ThriftType.structure
                else { throw corrupt("unknown map element type") }
                for _ in 0..<Int(n) {
                    try skip(keyType, inCollection: true, depth: depth + 1)
                    try skip(valueType, inCollection: true, depth: depth + 1)
                }
            }
        case ThriftType.structure:
            try beginStruct()
            while let f = try nextField() {
                try skip(f.type, depth: depth + 1)
            }
        default:
            throw corrupt("unknown type \(type)")
        }
    }
}
