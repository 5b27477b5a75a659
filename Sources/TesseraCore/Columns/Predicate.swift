/// A `where` filter over the fields of a source, evaluated on whole column batches.
///
/// Fields are addressed by their index in the source schema. Logic is three-valued as in SQL:
/// a comparison with a null field is *unknown*, `not unknown` is unknown, and a row is selected
/// only when the predicate is *true*. `field == null` / `field != null` test for nulls.
public indirect enum Predicate: Sendable, Hashable {
    case compare(field: Int, CompareOp, Literal)
    case isNull(field: Int)
    case isNotNull(field: Int)
    case isIn(field: Int, [Literal])
    case and(Predicate, Predicate)
    case or(Predicate, Predicate)
    case not(Predicate)

    public enum CompareOp: String, Sendable, Hashable, CaseIterable {
        case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    }

    /// A literal of the predicate language: a number, a string or a boolean.
    public enum Literal: Sendable, Hashable, CustomStringConvertible {
        case int(Int64)
        case double(Double)
        case string(String)
        case bool(Bool)

        public var description: String {
            switch self {
            case .int(let v): return String(v)
            case .double(let v): return String(v)
            case .string(let v): return "\"" + v.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
            case .bool(let v): return String(v)
            }
        }
    }

    /// Every field index the predicate reads.
    public var fields: Set<Int> {
        switch self {
        case .compare(let f, _, _), .isNull(let f), .isNotNull(let f), .isIn(let f, _): return [f]
        case .and(let a, let b), .or(let a, let b): return a.fields.union(b.fields)
        case .not(let a): return a.fields
        }
    }

    /// Canonical text, with `names` giving each field's name (used in state fingerprints).
    public func text(names: [String]) -> String {
        switch self {
        case .compare(let f, let op, let lit): return "\(names[f]) \(op.rawValue) \(lit)"
        case .isNull(let f): return "\(names[f]) == null"
        case .isNotNull(let f): return "\(names[f]) != null"
        case .isIn(let f, let list): return "\(names[f]) in [\(list.map(\.description).joined(separator: ", "))]"
        case .and(let a, let b): return "(\(a.text(names: names)) and \(b.text(names: names)))"
        case .or(let a, let b): return "(\(a.text(names: names)) or \(b.text(names: names)))"
        case .not(let a): return "not \(a.text(names: names))"
        }
    }

    /// Evaluates the predicate on every row; `selected[i]` is true only where it is *true*.
    /// `scratch` holds intermediate results between calls (one buffer per nesting level).
    public func evaluate(on batch: ColumnBatch, into selected: inout [Bool], scratch: inout [[UInt8]]) {
        evaluate(batch, depth: 0, &scratch)
        selected.removeAll(keepingCapacity: true)
        selected.append(contentsOf: repeatElement(false, count: batch.count))
        let yes = Truth.yes.rawValue
        scratch[0].withUnsafeBufferPointer { truth in
            selected.withUnsafeMutableBufferPointer { out in
                for i in out.indices { out[i] = truth[i] == yes }
            }
        }
    }

    public func evaluate(on batch: ColumnBatch, into selected: inout [Bool]) {
        var scratch: [[UInt8]] = []
        evaluate(on: batch, into: &selected, scratch: &scratch)
    }

    enum Truth: UInt8 { case no = 0, yes = 1, unknown = 2 }

    /// Writes the truth of every row into `scratch[depth]`.
    private func evaluate(_ batch: ColumnBatch, depth: Int, _ scratch: inout [[UInt8]]) {
        let n = batch.count
        while scratch.count <= depth + 1 { scratch.append([]) }
        scratch[depth].removeAll(keepingCapacity: true)
        scratch[depth].append(contentsOf: repeatElement(Truth.unknown.rawValue, count: n))
        let no = Truth.no.rawValue, yes = Truth.yes.rawValue, unknown = Truth.unknown.rawValue
        switch self {
        case .compare(let f, let op, let lit):
            let c = batch.columns[f]
            scratch[depth].withUnsafeMutableBufferPointer { out in
                Predicate.compare(c, op, lit, into: out)
            }
        case .isNull(let f), .isNotNull(let f):
            let c = batch.columns[f]
            let wantNull: Bool
            if case .isNull = self { wantNull = true } else { wantNull = false }
            for i in 0..<n { scratch[depth][i] = (c.validity[i] != wantNull) ? yes : no }
        case .isIn(let f, let list):
            let c = batch.columns[f]
            scratch[depth].withUnsafeMutableBufferPointer { out in
                for i in 0..<n { out[i] = c.validity[i] ? no : unknown }
            }
            var one = [UInt8](repeating: 0, count: n)
            for lit in list {
                one.withUnsafeMutableBufferPointer { Predicate.compare(c, .eq, lit, into: $0) }
                for i in 0..<n where one[i] == yes { scratch[depth][i] = yes }
            }
        case .and(let a, let b), .or(let a, let b):
            a.evaluate(batch, depth: depth + 1, &scratch)
            scratch.swapAt(depth, depth + 1)
            b.evaluate(batch, depth: depth + 1, &scratch)
            let isAnd: Bool
            if case .and = self { isAnd = true } else { isAnd = false }
            let dominant = isAnd ? no : yes, other = isAnd ? yes : no
            let right = scratch[depth + 1]
            scratch[depth].withUnsafeMutableBufferPointer { out in
                for i in 0..<n {
                    let l = out[i], r = right[i]
                    out[i] = (l == dominant || r == dominant) ? dominant : ((l == unknown || r == unknown) ? unknown : other)
                }
            }
        case .not(let a):
            a.evaluate(batch, depth: depth, &scratch)
            scratch[depth].withUnsafeMutableBufferPointer { out in
                for i in 0..<n where out[i] != unknown { out[i] = out[i] == yes ? no : yes }
            }
        }
    }

    @inline(__always)
    private static func holds<T: Comparable>(_ a: T, _ op: CompareOp, _ b: T) -> Bool {
        switch op {
        case .eq: return a == b
        case .ne: return a != b
        case .lt: return a < b
        case .le: return a <= b
        case .gt: return a > b
        case .ge: return a >= b
        }
    }

    /// Compares every non-null row of `c` with a literal: yes or no; nulls stay unknown. Types were
    /// checked when the topology was compiled; a mismatch that slips through compares as false.
    private static func compare(_ c: Column, _ op: CompareOp, _ lit: Literal, into out: UnsafeMutableBufferPointer<UInt8>) {
        let n = out.count
        let no = Truth.no.rawValue, yes = Truth.yes.rawValue, unknown = Truth.unknown.rawValue
        func each(_ test: (Int) -> Bool) {
            if c.validity.allSet {
                for i in 0..<n { out[i] = test(i) ? yes : no }
            } else {
                for i in 0..<n { out[i] = c.validity[i] ? (test(i) ? yes : no) : unknown }
            }
        }
        switch (c.type, lit) {
        case (.int64, .int(let v)): c.ints.withUnsafeBufferPointer { x in each { holds(x[$0], op, v) } }
        case (.int64, .double(let v)): c.ints.withUnsafeBufferPointer { x in each { holds(Double(x[$0]), op, v) } }
        case (.float64, .int(let v)): c.doubles.withUnsafeBufferPointer { x in each { holds(x[$0], op, Double(v)) } }
        case (.float64, .double(let v)): c.doubles.withUnsafeBufferPointer { x in each { holds(x[$0], op, v) } }
        case (.bool, .bool(let v)): c.ints.withUnsafeBufferPointer { x in each { holds(x[$0] != 0 ? 1 : 0, op, v ? 1 : 0) } }
        case (.string, .string(let v)):
            var literal = v  // its UTF-8 read in place (a native string's own storage): no copy per batch
            c.bytes.withUnsafeBufferPointer { bytes in
                c.offsets.withUnsafeBufferPointer { offsets in
                    literal.withUTF8 { lit in
                        let base = bytes.baseAddress  // nil only when every string is empty
                        @inline(__always) func cell(_ i: Int) -> UnsafeBufferPointer<UInt8> {
                            let start = Int(offsets[i])
                            return UnsafeBufferPointer(start: base.map { $0 + start }, count: Int(offsets[i &+ 1]) &- start)
                        }
                        if op == .eq || op == .ne, let base, let b = lit.baseAddress, c.validity.allSet {
                            // The common filter (`status == "paid"`): the length first, then the bytes.
                            let (match, differ) = op == .eq ? (yes, no) : (no, yes)
                            let literal = UnsafeRawPointer(b), length = lit.count
                            for i in 0..<n {
                                let start = Int(offsets[i])
                                out[i] = Int(offsets[i &+ 1]) &- start == length
                                    && UnsafeRawPointer(base + start).bytesEqual(literal, count: length) ? match : differ
                            }
                        } else if op == .eq || op == .ne {
                            let equal = op == .eq
                            each { i in (cell(i).count == lit.count && (lit.isEmpty || cell(i).elementsEqual(lit))) == equal }
                        } else {
                            each { i in holds(ByteString(cell(i)), op, ByteString(lit)) }
                        }
                    }
                }
            }
        default: each { _ in false }
        }
    }
}

/// Bytes ordered lexicographically, for string comparisons without building Strings.
private struct ByteString: Comparable {
    let bytes: UnsafeBufferPointer<UInt8>
    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }
    static func == (a: ByteString, b: ByteString) -> Bool { a.bytes.elementsEqual(b.bytes) }
    static func < (a: ByteString, b: ByteString) -> Bool { a.bytes.lexicographicallyPrecedes(b.bytes) }
}
