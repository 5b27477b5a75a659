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
    public func evaluate(on batch: ColumnBatch, into selected: inout [Bool]) {
        var truth = [Truth]()
        evaluate(batch, &truth)
        selected.removeAll(keepingCapacity: true)
        selected.reserveCapacity(truth.count)
        for t in truth { selected.append(t == .yes) }
    }

    enum Truth: UInt8 { case no = 0, yes = 1, unknown = 2 }

    private func evaluate(_ batch: ColumnBatch, _ out: inout [Truth]) {
        let n = batch.count
        switch self {
        case .compare(let f, let op, let lit):
            let c = batch.columns[f]
            out = (0..<n).map { i in c.validity[i] ? (Predicate.compare(c, i, op, lit) ? .yes : .no) : .unknown }
        case .isNull(let f):
            let c = batch.columns[f]
            out = (0..<n).map { c.validity[$0] ? .no : .yes }
        case .isNotNull(let f):
            let c = batch.columns[f]
            out = (0..<n).map { c.validity[$0] ? .yes : .no }
        case .isIn(let f, let list):
            let c = batch.columns[f]
            out = (0..<n).map { i in
                guard c.validity[i] else { return .unknown }
                return list.contains { Predicate.compare(c, i, .eq, $0) } ? .yes : .no
            }
        case .and(let a, let b):
            var right = [Truth]()
            a.evaluate(batch, &out)
            b.evaluate(batch, &right)
            for i in 0..<n {
                if out[i] == .no || right[i] == .no { out[i] = .no }
                else if out[i] == .unknown || right[i] == .unknown { out[i] = .unknown }
                else { out[i] = .yes }
            }
        case .or(let a, let b):
            var right = [Truth]()
            a.evaluate(batch, &out)
            b.evaluate(batch, &right)
            for i in 0..<n {
                if out[i] == .yes || right[i] == .yes { out[i] = .yes }
                else if out[i] == .unknown || right[i] == .unknown { out[i] = .unknown }
                else { out[i] = .no }
            }
        case .not(let a):
            a.evaluate(batch, &out)
            for i in 0..<n where out[i] != .unknown { out[i] = out[i] == .yes ? .no : .yes }
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

    /// Compares row `i` of a non-null cell with a literal. Types were checked when the topology
    /// was compiled; a mismatch that slips through compares as false.
    private static func compare(_ c: Column, _ i: Int, _ op: CompareOp, _ lit: Literal) -> Bool {
        switch (c.type, lit) {
        case (.int64, .int(let v)): return holds(c.ints[i], op, v)
        case (.int64, .double(let v)): return holds(Double(c.ints[i]), op, v)
        case (.float64, .int(let v)): return holds(c.doubles[i], op, Double(v))
        case (.float64, .double(let v)): return holds(c.doubles[i], op, v)
        case (.bool, .bool(let v)): return holds(c.ints[i] != 0 ? 1 : 0, op, v ? 1 : 0)
        case (.string, .string(let v)):
            return c.withUTF8(at: i) { cell in
                var lit = v
                return lit.withUTF8 { litBytes in
                    holds(ByteString(cell), op, ByteString(litBytes))
                }
            }
        default: return false
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
