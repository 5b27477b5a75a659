import TesseraCore

/// A brute-force model of docs/design.md, "Windows", written independently of the core: it keeps every accepted
/// event and recomputes each feature from scratch at a query time.
public struct Oracle {
    public struct Event {
        public var time: Micros
        /// The partition's stream time right after this event arrived.
        public var streamTime: Micros
        public var values: [Value?]
    }

    public let spec: ViewSpec
    public let lateness: Micros
    public private(set) var streamTime: Micros = .min
    public private(set) var events: [[Value]: [Event]] = [:]
    public private(set) var late = 0

    public init(spec: ViewSpec, lateness: Micros) {
        self.spec = spec
        self.lateness = lateness
    }

    /// Feeds one row in arrival order; returns whether it is accepted.
    @discardableResult
    public mutating func add(time: Micros, values: [Value?]) -> Bool {
        // A rejected row (no key, late) leaves no trace: stream time moves only with accepted ones.
        let key = spec.keyFields.map { values[$0] }
        guard key.allSatisfy({ $0 != nil }) else { return false }
        if streamTime != .min && time < streamTime - lateness {
            late += 1
            return false
        }
        streamTime = max(streamTime, time)
        events[key.map { $0! }, default: []].append(Event(time: time, streamTime: streamTime, values: values))
        return true
    }

    public mutating func advance(to time: Micros) { streamTime = max(streamTime, time) }

    /// The feature row of `key` as of stream time `q`: every accepted event that had arrived by
    /// then (stream time ≤ q), each feature over its window `[⌊(q − W)/h⌋·h, q]`.
    public func row(_ key: [Value], at q: Micros) -> [Value?] {
        let all = (events[key] ?? []).filter { $0.streamTime <= q }
        return spec.features.map { f in
            var rows = all
            if case .sliding(let w, let h) = f.window {
                let tail = floorDivide(q - w, h) * h
                rows = rows.filter { $0.time >= tail && $0.time <= q }
            }
            if let p = f.filter { rows = rows.filter { evaluate(p, $0.values) == true } }
            return aggregate(f, rows)
        }
    }

    private func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        var q = a / b
        if a % b != 0 && a < 0 { q -= 1 }
        return q
    }

    private func number(_ v: Value?) -> Double? {
        switch v {
        case .int(let x): return Double(x)
        case .double(let x): return x
        default: return nil
        }
    }

    private func aggregate(_ f: FeatureSpec, _ rows: [Event]) -> Value? {
        let values: [(Micros, Value)] = f.field.map { field in rows.compactMap { e in e.values[field].map { (e.time, $0) } } } ?? []
        let numbers = values.compactMap { number($0.1) }
        switch f.aggregate {
        case .count: return .int(Int64(f.field == nil ? rows.count : values.count))
        case .sum: return .double(numbers.reduce(0, +))
        case .mean: return numbers.isEmpty ? nil : .double(numbers.reduce(0, +) / Double(numbers.count))
        case .min: return numbers.min().map { .double($0) }
        case .max: return numbers.max().map { .double($0) }
        case .first:
            guard let t = values.map(\.0).min() else { return nil }
            return values.first { $0.0 == t }!.1
        case .last:
            guard let t = values.map(\.0).max() else { return nil }
            return values.last { $0.0 == t }!.1
        case .variance, .stddev:
            guard numbers.count >= 2 else { return nil }
            let mean = numbers.reduce(0, +) / Double(numbers.count)
            let v = numbers.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(numbers.count - 1)
            return .double(f.aggregate == .variance ? v : v.squareRoot())
        case .approxCountDistinct:
            return .int(Int64(Set(values.map { canonical($0.1) }).count))
        case .approxPercentile:
            guard !numbers.isEmpty else { return nil }
            let sorted = numbers.sorted()
            let rank = max(1, Int((f.percentile! * Double(sorted.count)).rounded(.up)))
            return .double(sorted[min(rank, sorted.count) - 1])
        }
    }

    private func canonical(_ v: Value) -> Value {
        if case .double(let d) = v, d == d.rounded(), abs(d) < 9e18 { return .int(Int64(d)) }
        return v
    }

    /// Three-valued evaluation: nil is SQL's unknown.
    public func evaluate(_ p: Predicate, _ row: [Value?]) -> Bool? {
        switch p {
        case .isNull(let f): return row[f] == nil
        case .isNotNull(let f): return row[f] != nil
        case .compare(let f, let op, let lit):
            guard let v = row[f] else { return nil }
            return compare(v, op, lit)
        case .isIn(let f, let list):
            guard let v = row[f] else { return nil }
            return list.contains { compare(v, .eq, $0) }
        case .and(let a, let b):
            let x = evaluate(a, row), y = evaluate(b, row)
            if x == false || y == false { return false }
            if x == nil || y == nil { return nil }
            return true
        case .or(let a, let b):
            let x = evaluate(a, row), y = evaluate(b, row)
            if x == true || y == true { return true }
            if x == nil || y == nil { return nil }
            return false
        case .not(let a):
            return evaluate(a, row).map { !$0 }
        }
    }

    private func compare(_ v: Value, _ op: Predicate.CompareOp, _ lit: Predicate.Literal) -> Bool {
        func holds<T: Comparable>(_ a: T, _ b: T) -> Bool {
            switch op {
            case .eq: return a == b
            case .ne: return a != b
            case .lt: return a < b
            case .le: return a <= b
            case .gt: return a > b
            case .ge: return a >= b
            }
        }
        switch (v, lit) {
        case (.string(let a), .string(let b)): return stringCompare(a, b, op)
        case (.bool(let a), .bool(let b)): return holds(a ? 1 : 0, b ? 1 : 0)
        default:
            guard let a = number(v) else { return false }
            switch lit {
            case .int(let b): return holds(a, Double(b))
            case .double(let b): return holds(a, b)
            default: return false
            }
        }
    }

    private func stringCompare(_ a: String, _ b: String, _ op: Predicate.CompareOp) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        switch op {
        case .eq: return x == y
        case .ne: return x != y
        case .lt: return x.lexicographicallyPrecedes(y)
        case .le: return !y.lexicographicallyPrecedes(x)
        case .gt: return y.lexicographicallyPrecedes(x)
        case .ge: return !x.lexicographicallyPrecedes(y)
        }
    }
}
