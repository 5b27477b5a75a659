import TesseraCore
import TesseraTopology

/// How to read one message type into a source's slots: per field number what to do with it,
/// built once by matching the message's fields (by name) with the declared paths.
final class ProtoProgram: Sendable {  // a class: each decode holds it by one reference, not a copy of its parts
    let root: MessageOps
    /// Enum value names of every enum read (`DecodedSlot.symbol` indexes them).
    let symbols: [String]
    /// Why the message cannot be read as declared, if it cannot.
    let problem: String?
    /// The source's timestamp unit as a divisor of nanoseconds, for `google.protobuf.Timestamp`.
    let nanosPerUnit: Int64
    let unitsPerSecond: Int64

    init(message: ProtoSchema.Message, schema: ProtoSchema, fields: PayloadFields, timestamp: TimeField) {
        switch timestamp.unit {
        case .seconds: (nanosPerUnit, unitsPerSecond) = (1_000_000_000, 1)
        case .milliseconds: (nanosPerUnit, unitsPerSecond) = (1_000_000, 1_000)
        case .microseconds, .rfc3339: (nanosPerUnit, unitsPerSecond) = (1_000, 1_000_000)
        }
        var builder = Builder(schema: schema, fields: fields)
        let tree = AvroProgram.PathTree(fields.paths)
        root = builder.ops(message, at: tree.root, tree: tree, depth: 0)
        symbols = builder.symbols
        problem = builder.problems.isEmpty ? nil : builder.problems.joined(separator: "; ")
    }

    struct Builder {
        let schema: ProtoSchema
        let fields: PayloadFields
        var symbols: [String] = []
        var problems: [String] = []

        mutating func ops(_ m: ProtoSchema.Message, at node: Int, tree: AvroProgram.PathTree, depth: Int) -> MessageOps {
            var byNumber: [Int: ProtoOp] = [:]
            var defaults: [(Int, DecodedSlot)] = []
            guard depth < 32 else {
                problems.append("paths nest deeper than 32 messages")
                return MessageOps(byNumber: [:], defaults: [])
            }
            for (name, entry) in tree.nodes[node].entries {
                guard let f = m.fields.first(where: { $0.name == name }) else { continue }  // declared, not written: null
                let paths = fields.paths
                func path(_ s: Int) -> String { paths[s].joined(separator: ".") }
                switch entry {
                case .node(let child):
                    guard f.type == 11, !f.repeated, let sub = schema.messages[f.typeName] else {
                        problems.append("'\(name)' in \(m.name) is not a message, so nothing declared below it can be read")
                        continue
                    }
                    byNumber[f.number] = .message(ops(sub, at: child, tree: tree, depth: depth + 1))
                case .slot(let s):
                    guard !f.repeated else { problems.append("'\(path(s))' is a repeated field, not a value"); continue }
                    let symbolsBefore = symbols.count
                    guard let op = scalar(f, into: s, path: path(s)) else { continue }
                    byNumber[f.number] = op
                    if !f.hasPresence, let d = defaultValue(f, firstSymbol: symbolsBefore) { defaults.append((s, d)) }
                }
            }
            return MessageOps(byNumber: byNumber, defaults: defaults)
        }

        /// The proto3 default of a scalar without presence; an enum's is its value 0 (its symbols
        /// start at `firstSymbol`).
        func defaultValue(_ f: ProtoSchema.Field, firstSymbol: Int) -> DecodedSlot? {
            switch f.type {
            case 1, 2: return DecodedSlot(kind: .double, bits: 0.0.bitPattern)
            case 8: return DecodedSlot(kind: .bool, bits: 0)
            case 9, 12: return DecodedSlot(kind: .string, bits: 0, start: 0, end: 0)
            case 14:
                guard let e = schema.enums[f.typeName], let zero = e.values.firstIndex(where: { $0.number == 0 }) ?? (e.values.isEmpty ? nil : 0) else { return nil }
                return DecodedSlot(kind: .symbol, bits: UInt64(firstSymbol + zero))
            case 11: return nil  // a Timestamp or a wrapper: a message, with presence
            default: return DecodedSlot(kind: .int, bits: 0)
            }
        }

        mutating func scalar(_ f: ProtoSchema.Field, into s: Int, path: String) -> ProtoOp? {
            let declared = fields.types[s]
            func mismatch(_ what: String) -> ProtoOp? {
                problems.append("'\(path)' is \(declared.rawValue), the message's \(what) does not read as one")
                return nil
            }
            switch f.type {
            case 3, 4, 5, 6, 7, 13, 15, 16, 17, 18:
                guard declared == .int64 || declared == .float64 else { return mismatch("integer") }
                return .integer(s, encoding: IntegerEncoding(type: f.type))
            case 1, 2:
                guard declared == .float64 else { return mismatch(f.type == 1 ? "double" : "float") }
                return .floating(s, double: f.type == 1)
            case 8:
                guard declared == .bool else { return mismatch("bool") }
                return .boolean(s)
            case 9, 12:
                guard declared == .string else { return mismatch(f.type == 9 ? "string" : "bytes") }
                return .text(s)
            case 14:
                guard declared == .string else { return mismatch("enum \(f.typeName)") }
                guard let e = schema.enums[f.typeName] else { problems.append("'\(path)': enum \(f.typeName) is not defined"); return nil }
                let first = symbols.count
                symbols += e.values.map(\.name)
                var numbers: [Int32: Int] = [:]
                for (i, v) in e.values.enumerated() where numbers[v.number] == nil { numbers[v.number] = first + i }
                return .enumeration(s, numbers: numbers)
            case 11:
                switch f.typeName {
                case "google.protobuf.Timestamp":
                    guard declared == .int64 || declared == .float64 else { return mismatch("google.protobuf.Timestamp") }
                    return .timestamp(s)
                case let name where name.hasPrefix("google.protobuf.") && name.hasSuffix("Value"):
                    guard let wrapper = ProtoSchema.wellKnown[name], let inner = wrapper.fields.first,
                          let op = scalar(inner, into: s, path: path) else { return mismatch(name) }
                    return .wrapper([op])
                default:
                    return mismatch("message \(f.typeName)")
                }
            default:
                return mismatch("field of type \(f.type)")
            }
        }
    }
}

/// What to do with each field of one message: read it into a slot, descend into it, or (any
/// number not listed) pass over it; and the proto3 defaults of the declared scalars, set first.
struct MessageOps: Sendable {
    /// Field numbers below 64 (nearly all of them) index `small`; the rest are looked up.
    private let small: [ProtoOp?]
    private let large: [Int: ProtoOp]
    let defaults: [(Int, DecodedSlot)]

    init(byNumber: [Int: ProtoOp], defaults: [(Int, DecodedSlot)]) {
        var small = [ProtoOp?](repeating: nil, count: 64)
        var large: [Int: ProtoOp] = [:]
        for (n, op) in byNumber {
            if n < 64 { small[n] = op } else { large[n] = op }
        }
        self.small = small
        self.large = large
        self.defaults = defaults
    }

    @inline(__always)
    private func op(_ number: Int) -> ProtoOp? { number < 64 ? small[number] : large[number] }

    func read(_ r: inout ProtoReader, into slots: inout [DecodedSlot], program: ProtoProgram, depth: Int) throws(Rejection) {
        guard depth < 64 else { throw Rejection(.undecodable, "messages nested deeper than 64") }
        for (s, d) in defaults { slots[s] = d }
        while !r.atEnd {
            let (number, wire) = try r.tag()
            guard let op = op(number) else {
                try r.skip(wire)
                continue
            }
            try op.read(&r, wire: wire, into: &slots, program: program, depth: depth)
        }
    }
}

/// How an integer field is written on the wire.
enum IntegerEncoding: Sendable {
    case varint, varint32, unsigned, unsigned32, zigzag, fixed32, sfixed32, fixed64, sfixed64

    init(type: Int) {
        switch type {
        case 3: self = .varint
        case 5: self = .varint32
        case 4: self = .unsigned
        case 13: self = .unsigned32
        case 17, 18: self = .zigzag
        case 7: self = .fixed32
        case 15: self = .sfixed32
        case 6: self = .fixed64
        default: self = .sfixed64
        }
    }

    var wire: Int {
        switch self {
        case .fixed32, .sfixed32: return 5
        case .fixed64, .sfixed64: return 1
        default: return 0
        }
    }
}

enum ProtoOp: Sendable {
    case message(MessageOps)
    case integer(Int, encoding: IntegerEncoding)
    case floating(Int, double: Bool)
    case boolean(Int)
    case text(Int)
    /// An enum: its numbers to symbol indexes.
    case enumeration(Int, numbers: [Int32: Int])
    case timestamp(Int)
    /// A wrapper message (`Int64Value`, …): its field 1 read by the one inner operation (held in
    /// an array rather than an `indirect` case, whose boxes this toolchain leaks).
    case wrapper([ProtoOp])

    func read(_ r: inout ProtoReader, wire: Int, into slots: inout [DecodedSlot], program: ProtoProgram, depth: Int) throws(Rejection) {
        func expect(_ w: Int) throws(Rejection) {
            guard wire == w else { throw Rejection(.undecodable, "wire type \(wire) where \(w) is expected") }
        }
        switch self {
        case .message(let ops):
            try expect(2)
            var sub = try r.submessage()
            try ops.read(&sub, into: &slots, program: program, depth: depth + 1)
        case .integer(let s, let encoding):
            try expect(encoding.wire)
            let v: Int64
            switch encoding {
            case .varint: v = Int64(bitPattern: try r.varint())
            case .varint32: v = Int64(Int32(truncatingIfNeeded: try r.varint()))
            case .unsigned:
                let u = try r.varint()
                guard u <= UInt64(Int64.max) else { throw Rejection(.wrongType, "a uint64 of \(u), beyond int64") }
                v = Int64(u)
            case .unsigned32: v = Int64(UInt32(truncatingIfNeeded: try r.varint()))
            case .zigzag: v = Varint.unzigzag(try r.varint())
            case .fixed32: v = Int64(UInt32(truncatingIfNeeded: try r.fixed(4)))
            case .sfixed32: v = Int64(Int32(truncatingIfNeeded: try r.fixed(4)))
            case .fixed64:
                let u = try r.fixed(8)
                guard u <= UInt64(Int64.max) else { throw Rejection(.wrongType, "a fixed64 of \(u), beyond int64") }
                v = Int64(u)
            case .sfixed64: v = Int64(bitPattern: try r.fixed(8))
            }
            slots[s] = DecodedSlot(kind: .int, bits: UInt64(bitPattern: v))
        case .floating(let s, let double):
            try expect(double ? 1 : 5)
            let bits = try r.fixed(double ? 8 : 4)
            let v = double ? Double(bitPattern: bits) : Double(Float(bitPattern: UInt32(truncatingIfNeeded: bits)))
            slots[s] = DecodedSlot(kind: .double, bits: v.bitPattern)
        case .boolean(let s):
            try expect(0)
            slots[s] = DecodedSlot(kind: .bool, bits: try r.varint() != 0 ? 1 : 0)
        case .text(let s):
            try expect(2)
            let range = try r.lengthDelimited()
            slots[s] = DecodedSlot(kind: .string, bits: 0, start: range.lowerBound, end: range.upperBound)
        case .enumeration(let s, let numbers):
            try expect(0)
            let number = Int32(truncatingIfNeeded: try r.varint())
            guard let symbol = numbers[number] else {
                throw Rejection(.wrongType, "enum value \(number) is not in the message's definition")
            }
            slots[s] = DecodedSlot(kind: .symbol, bits: UInt64(symbol))
        case .timestamp(let s):
            try expect(2)
            var sub = try r.submessage()
            var seconds: Int64 = 0, nanos: Int64 = 0
            while !sub.atEnd {
                let (n, w) = try sub.tag()
                switch (n, w) {
                case (1, 0): seconds = Int64(bitPattern: try sub.varint())
                case (2, 0): nanos = Int64(Int32(truncatingIfNeeded: try sub.varint()))
                default: try sub.skip(w)
                }
            }
            guard nanos >= 0, nanos < 1_000_000_000 else { throw Rejection(.undecodable, "a Timestamp with \(nanos) nanoseconds") }
            let (whole, overflow) = seconds.multipliedReportingOverflow(by: program.unitsPerSecond)
            guard !overflow else { throw Rejection(.timestampOutOfRange, "a Timestamp of \(seconds) s overflows") }
            slots[s] = DecodedSlot(kind: .int, bits: UInt64(bitPattern: whole + nanos / program.nanosPerUnit))
        case .wrapper(let wrapped):
            let inner = wrapped[0]
            try expect(2)
            var sub = try r.submessage()
            // An empty wrapper holds its type's default (a present value, not null).
            switch inner {
            case .integer(let s, _), .timestamp(let s): slots[s] = DecodedSlot(kind: .int, bits: 0)
            case .floating(let s, _): slots[s] = DecodedSlot(kind: .double, bits: 0.0.bitPattern)
            case .boolean(let s): slots[s] = DecodedSlot(kind: .bool, bits: 0)
            case .text(let s): slots[s] = DecodedSlot(kind: .string, bits: 0, start: 0, end: 0)
            default: break
            }
            while !sub.atEnd {
                let (n, w) = try sub.tag()
                if n == 1 { try inner.read(&sub, wire: w, into: &slots, program: program, depth: depth + 1) } else { try sub.skip(w) }
            }
        }
    }
}

/// A cursor over a message's bytes within the payload, every read checked against its end.
struct ProtoReader {
    let payload: UnsafeRawBufferPointer
    private(set) var position: Int
    let end: Int

    init(_ payload: UnsafeRawBufferPointer, from start: Int, to end: Int) {
        self.payload = payload
        position = start
        self.end = end
    }

    var atEnd: Bool { position >= end }

    mutating func varint() throws(Rejection) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift < 64 {
            let b = payload[position]
            position += 1
            v |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
        throw Rejection(.undecodable, position >= end ? "the message ends inside a varint" : "a varint longer than 10 bytes")
    }

    mutating func tag() throws(Rejection) -> (Int, Int) {
        let t = try varint()
        guard t >> 3 > 0, t >> 3 <= 536_870_911 else { throw Rejection(.undecodable, "field number \(t >> 3)") }
        return (Int(t >> 3), Int(t & 7))
    }

    mutating func fixed(_ n: Int) throws(Rejection) -> UInt64 {
        guard n <= end - position else { throw Rejection(.undecodable, "the message ends inside a fixed\(n * 8)") }
        var v: UInt64 = 0
        for k in 0..<n { v |= UInt64(payload[position + k]) << UInt64(8 * k) }
        position += n
        return v
    }

    mutating func lengthDelimited() throws(Rejection) -> Range<Int> {
        let n = try varint()
        guard n <= UInt64(end - position) else { throw Rejection(.undecodable, "a length of \(n) past the message's end") }
        defer { position += Int(n) }
        return position..<position + Int(n)
    }

    mutating func submessage() throws(Rejection) -> ProtoReader {
        let range = try lengthDelimited()
        return ProtoReader(payload, from: range.lowerBound, to: range.upperBound)
    }

    mutating func skip(_ wire: Int) throws(Rejection) {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed(8)
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed(4)
        default: throw Rejection(.undecodable, "wire type \(wire) (groups are not read)")
        }
    }
}
