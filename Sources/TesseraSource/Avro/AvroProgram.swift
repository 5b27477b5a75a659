import Foundation
import TesseraCore
import TesseraTopology

/// How to read one writer schema into a source's slots: an operation per writer value, built once
/// per schema id by resolving the writer's schema against the declared fields.
final class AvroProgram: Sendable {  // a class: each decode holds it by one reference, not a copy of its parts
    let root: AvroOp
    /// Enum symbols, shared by every enum the program reads (`DecodedSlot.symbol` indexes them).
    let symbols: [String]

    init(writer: AvroType, fields: PayloadFields, timestamp: TimeField) throws(AvroSchemaError) {
        var builder = Builder(fields: fields, timestamp: timestamp)
        guard case .record = writer else { throw AvroSchemaError(description: "the writer schema is \(writer.description), not a record") }
        let tree = PathTree(fields.paths)
        root = try builder.op(writer, at: tree.root, tree: tree)
        symbols = builder.symbols
    }

    /// The declared paths as a tree: at each record, the names read there and what they lead to.
    struct PathTree {
        struct Node { var entries: [String: Entry] = [:] }
        enum Entry { case slot(Int), node(Int) }
        var nodes = [Node()]
        var root: Int { 0 }

        init(_ paths: [[String]]) {
            for (slot, path) in paths.enumerated() {
                var n = 0
                for (depth, name) in path.enumerated() {
                    if depth == path.count - 1 {
                        nodes[n].entries[name] = .slot(slot)
                    } else if case .node(let child)? = nodes[n].entries[name] {
                        n = child
                    } else {
                        nodes.append(Node())
                        nodes[n].entries[name] = .node(nodes.count - 1)
                        n = nodes.count - 1
                    }
                }
            }
        }
    }

    struct Builder {
        let fields: PayloadFields
        let timestamp: TimeField
        var symbols: [String] = []

        /// The operation reading a writer value of `type` into what `node` declares (a record's fields).
        mutating func op(_ type: AvroType, at node: Int, tree: PathTree) throws(AvroSchemaError) -> AvroOp {
            switch type {
            case .record(_, let writerFields):
                var ops: [AvroOp] = []
                for f in writerFields {
                    switch tree.nodes[node].entries[f.name] {
                    case nil: ops.append(try skip(f.type))
                    case .slot(let s)?: ops.append(try read(f.type, into: s, name: f.name))
                    case .node(let child)?: ops.append(try op(f.type, at: child, tree: tree))
                    }
                }
                return .record(ops)
            case .union(let branches):
                var ops: [AvroOp] = []
                for b in branches { ops.append(b == .null ? .skip(.null) : try op(b, at: node, tree: tree)) }
                return .union(ops)
            case .null:
                return .skip(.null)
            case .logical(AvroSchema.recursive, _, _):
                throw AvroSchemaError(description: "a record refers to itself (recursive types are not read)")
            default:
                // A path goes through a value that is not a record: the fields below it are never there.
                return .mismatch("\(paths(below: node, tree: tree)) goes through \(type.description), not a record")
            }
        }

        func paths(below node: Int, tree: PathTree) -> String {
            var out: [String] = []
            func walk(_ n: Int) {
                for (_, e) in tree.nodes[n].entries.sorted(by: { $0.key < $1.key }) {
                    switch e {
                    case .slot(let s): out.append(fields.paths[s].joined(separator: "."))
                    case .node(let c): walk(c)
                    }
                }
            }
            walk(node)
            return out.joined(separator: ", ")
        }

        /// The operation reading a writer value into slot `s`, converted to the slot's type.
        mutating func read(_ type: AvroType, into s: Int, name: String) throws(AvroSchemaError) -> AvroOp {
            let declared = fields.types[s]
            let path = fields.paths[s].joined(separator: ".")
            let isTime = s == fields.timestampSlot && fields.timestampInPayload
            func mismatch(_ why: String) -> AvroOp { .mismatch("'\(path)' is \(declared.rawValue), the writer's \(why)") }
            switch type {
            case .union(let branches):
                var ops: [AvroOp] = []
                for b in branches { ops.append(b == .null ? .setNull(s) : try read(b, into: s, name: name)) }
                return .union(ops)
            case .null:
                return .setNull(s)
            case .logical(let logical, let bases, let scale):
                let base = bases[0]
                if isTime {
                    let unit: TimeUnit? = ["timestamp-millis": .milliseconds, "local-timestamp-millis": .milliseconds,
                                           "timestamp-micros": .microseconds, "local-timestamp-micros": .microseconds][logical]
                    if let unit, unit != timestamp.unit {
                        return mismatch("\(logical) is not the source's timestamp unit \(timestamp.unit.rawValue)")
                    }
                }
                if logical == "decimal" {
                    guard declared == .float64 else { return mismatch("decimal reads as float64 only") }
                    switch base {
                    case .bytes: return .decimal(s, scale: scale, size: nil)
                    case .fixed(_, let size): return .decimal(s, scale: scale, size: size)
                    default: throw AvroSchemaError(description: "decimal on \(base.description)")
                    }
                }
                return try read(base, into: s, name: name)
            case .int, .long:
                guard declared == .int64 || declared == .float64 else { return mismatch("\(type.description) does not read as \(declared.rawValue)") }
                return .integer(s, int: type == .int)
            case .float, .double:
                guard declared == .float64 else { return mismatch("\(type.description) does not read as \(declared.rawValue)") }
                return .floating(s, double: type == .double)
            case .boolean:
                guard declared == .bool else { return mismatch("boolean does not read as \(declared.rawValue)") }
                return .boolean(s)
            case .string, .bytes:
                guard declared == .string else { return mismatch("\(type.description) does not read as \(declared.rawValue)") }
                return .text(s)
            case .enumeration(_, let names):
                guard declared == .string else { return mismatch("\(type.description) does not read as \(declared.rawValue)") }
                let first = symbols.count
                symbols += names
                return .symbol(s, first: first, count: names.count)
            case .record, .array, .map, .fixed:
                return mismatch("\(type.description) is not a value")
            }
        }

        func skip(_ type: AvroType) throws(AvroSchemaError) -> AvroOp {
            func recursive(_ t: AvroType) -> Bool {
                switch t {
                case .logical(AvroSchema.recursive, _, _): return true
                case .logical(_, let base, _), .array(let base), .map(let base): return recursive(base[0])
                case .record(_, let fields): return fields.contains { recursive($0.type) }
                case .union(let branches): return branches.contains(where: recursive)
                default: return false
                }
            }
            if recursive(type) { throw AvroSchemaError(description: "a record refers to itself (recursive types are not read)") }
            return .skip(type)
        }
    }
}

/// One step of reading a writer value.
enum AvroOp: Sendable {
    /// A value nothing declares: passed over.
    case skip(AvroType)
    /// A record: one operation per writer field, in the writer's order.
    case record([AvroOp])
    /// A union: the operation of the branch the value holds.
    case union([AvroOp])
    case setNull(Int)
    /// An int or long (zigzag varint) into a slot.
    case integer(Int, int: Bool)
    case floating(Int, double: Bool)
    case boolean(Int)
    /// A string or bytes: its range in the payload.
    case text(Int)
    /// An enum's symbol: `first` + its index into the program's symbols.
    case symbol(Int, first: Int, count: Int)
    /// A decimal (bytes, or fixed of `size`) to the nearest float64.
    case decimal(Int, scale: Int, size: Int?)
    /// Reading this value means the event cannot be read as declared.
    case mismatch(String)

    func read(_ r: inout AvroReader, into slots: inout [DecodedSlot]) throws(Rejection) {
        switch self {
        case .skip(let type): try r.skip(type, depth: 0)
        case .record(let ops): for op in ops { try op.read(&r, into: &slots) }
        case .union(let branches):
            let index = try r.long()
            guard index >= 0, index < branches.count else { throw Rejection(.undecodable, "union branch \(index) of \(branches.count)") }
            try branches[Int(index)].read(&r, into: &slots)
        case .setNull(let s): slots[s].kind = .null
        case .integer(let s, let int):
            let v = try r.long()
            if int && (v < Int64(Int32.min) || v > Int64(Int32.max)) { throw Rejection(.undecodable, "an int out of range") }
            slots[s] = DecodedSlot(kind: .int, bits: UInt64(bitPattern: v))
        case .floating(let s, let double):
            let v = double ? try r.double() : Double(try r.float())
            slots[s] = DecodedSlot(kind: .double, bits: v.bitPattern)
        case .boolean(let s):
            let b = try r.byte()
            guard b <= 1 else { throw Rejection(.undecodable, "a boolean byte \(b)") }
            slots[s] = DecodedSlot(kind: .bool, bits: UInt64(b))
        case .text(let s):
            let range = try r.bytes()
            slots[s] = DecodedSlot(kind: .string, bits: 0, start: range.lowerBound, end: range.upperBound)
        case .symbol(let s, let first, let count):
            let index = try r.long()
            guard index >= 0, index < count else { throw Rejection(.undecodable, "enum symbol \(index) of \(count)") }
            slots[s] = DecodedSlot(kind: .symbol, bits: UInt64(first + Int(index)))
        case .decimal(let s, let scale, let size):
            let range: Range<Int>
            if let size { range = try r.fixed(size) } else { range = try r.bytes() }
            slots[s] = DecodedSlot(kind: .double, bits: r.decimal(range, scale: scale).bitPattern)
        case .mismatch(let why):
            throw Rejection(.schemaMismatch, why)
        }
    }
}

/// A cursor over Avro's binary encoding, every read checked against the payload's end.
struct AvroReader {
    let payload: UnsafeRawBufferPointer
    private(set) var position: Int

    init(_ payload: UnsafeRawBufferPointer, from start: Int) {
        self.payload = payload
        position = start
    }

    var atEnd: Bool { position == payload.count }

    mutating func byte() throws(Rejection) -> UInt8 {
        guard position < payload.count else { throw Rejection(.undecodable, "the value ends early") }
        defer { position += 1 }
        return payload[position]
    }

    /// A zigzag varint (int and long).
    mutating func long() throws(Rejection) -> Int64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw Rejection(.undecodable, "a varint longer than 10 bytes") }
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return Varint.unzigzag(v) }
            shift += 7
        }
    }

    mutating func float() throws(Rejection) -> Float {
        let r = try fixed(4)
        return Float(bitPattern: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt32.self)))
    }

    mutating func double() throws(Rejection) -> Double {
        let r = try fixed(8)
        return Double(bitPattern: UInt64(littleEndian: payload.loadUnaligned(fromByteOffset: r.lowerBound, as: UInt64.self)))
    }

    mutating func fixed(_ n: Int) throws(Rejection) -> Range<Int> {
        guard n <= payload.count - position else { throw Rejection(.undecodable, "the value ends early") }
        defer { position += n }
        return position..<position + n
    }

    /// Bytes or a string: a long length, then that many bytes.
    mutating func bytes() throws(Rejection) -> Range<Int> {
        let n = try long()
        guard n >= 0, n <= Int64(payload.count - position) else { throw Rejection(.undecodable, "a length of \(n) past the value's end") }
        return try fixed(Int(n))
    }

    /// A two's-complement big-endian unscaled integer × 10^-scale, to the nearest double (through
    /// its decimal text, which Swift rounds correctly).
    func decimal(_ range: Range<Int>, scale: Int) -> Double {
        var magnitude: [UInt8] = Array(payload[range])
        let negative = (magnitude.first ?? 0) & 0x80 != 0
        if negative {
            // Two's complement: invert and add one.
            var carry = 1
            for i in magnitude.indices.reversed() {
                let v = Int(~magnitude[i]) + carry
                magnitude[i] = UInt8(v & 0xff)
                carry = v >> 8
            }
        }
        // Base-256 to base-10 digits.
        var digits: [UInt8] = []
        var number = magnitude
        while number.contains(where: { $0 != 0 }) {
            var remainder = 0
            for i in number.indices {
                let v = remainder * 256 + Int(number[i])
                number[i] = UInt8(v / 10)
                remainder = v % 10
            }
            digits.append(UInt8(remainder))
        }
        if digits.isEmpty { digits = [0] }
        var text = negative ? "-" : ""
        text += String(digits.reversed().map { Character(Unicode.Scalar($0 + 0x30)) })
        if scale != 0 { text += "e\(-scale)" }
        return Double(text) ?? .nan
    }

    /// Passes over a value of `type`.
    mutating func skip(_ type: AvroType, depth: Int) throws(Rejection) {
        guard depth < 64 else { throw Rejection(.undecodable, "nested deeper than 64 levels") }
        switch type {
        case .null: return
        case .boolean: _ = try fixed(1)
        case .int, .long, .enumeration: _ = try long()
        case .float: _ = try fixed(4)
        case .double: _ = try fixed(8)
        case .bytes, .string: _ = try bytes()
        case .fixed(_, let size): _ = try fixed(size)
        case .logical(_, let base, _): try skip(base[0], depth: depth + 1)
        case .record(_, let fields): for f in fields { try skip(f.type, depth: depth + 1) }
        case .union(let branches):
            let index = try long()
            guard index >= 0, index < branches.count else { throw Rejection(.undecodable, "union branch \(index) of \(branches.count)") }
            try skip(branches[Int(index)], depth: depth + 1)
        case .array(let item): try skipBlocks { (r: inout AvroReader) throws(Rejection) in try r.skip(item[0], depth: depth + 1) }
        case .map(let value):
            try skipBlocks { (r: inout AvroReader) throws(Rejection) in
                _ = try r.bytes()
                try r.skip(value[0], depth: depth + 1)
            }
        }
    }

    /// Array and map blocks: a count (negative: followed by the block's size in bytes), items, until a zero count.
    private mutating func skipBlocks(_ item: (inout AvroReader) throws(Rejection) -> Void) throws(Rejection) {
        while true {
            var count = try long()
            if count == 0 { return }
            if count < 0 {
                let size = try long()
                guard size >= 0 else { throw Rejection(.undecodable, "a negative block size") }
                _ = try fixed(Int(size))
                continue
            }
            // Each item takes at least a byte, unless it is empty (null, an empty record): then
            // there is nothing to pass over, however many the count says.
            let before = position
            try item(&self)
            if position == before { continue }
            count -= 1
            while count > 0 {
                try item(&self)
                count -= 1
            }
        }
    }
}
