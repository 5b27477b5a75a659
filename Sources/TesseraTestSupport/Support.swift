@_exported import TesseraCore

/// The emissions of one view, collected across batches, with as-of lookup.
public struct EmissionLog {
    public var rows: [[Value]: [(time: Micros, features: [Value?])]] = [:]
    public var count = 0

    public init() {}

    public mutating func collect(_ batch: EmissionBatch) {
        for i in 0..<batch.count {
            let r = batch.row(i)
            rows[r.key, default: []].append((r.time, r.features))
            count += 1
        }
    }

    /// The latest row with time ≤ q (the last one written among equal times).
    public mutating func add(key: [Value], time: Micros, features: [Value?]) {
        rows[key, default: []].append((time, features))
        count += 1
    }

    /// Sorts each entity's rows by time (stable: equal times keep their order).
    public mutating func sort() {
        for k in rows.keys { rows[k] = rows[k]!.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element) }
    }

    public func asOf(_ key: [Value], _ q: Micros) -> [Value?]? {
        guard let list = rows[key] else { return nil }
        var lo = 0, hi = list.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if list[mid].time <= q { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : list[lo - 1].features
    }
}

/// Whether two feature values agree, within floating-point and sketch tolerances.
public func agree(_ a: Value?, _ b: Value?, aggregate: Aggregate) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case (.double(let x), .double(let y)):
        let scale = max(1, abs(x), abs(y))
        let tolerance = (aggregate == .variance || aggregate == .stddev) ? 1e-7 : 1e-9
        return abs(x - y) <= tolerance * scale
    case (.int(let x), .int(let y)) where aggregate == .approxCountDistinct:
        return abs(Double(x - y)) <= max(1, 3 * HLL.relativeStandardError * Double(y))
    default:
        return a == b
    }
}

/// The empty row of a view: counts and sums 0, everything else null.
public func emptyRow(_ spec: ViewSpec) -> [Value?] {
    spec.features.map { f in
        switch f.aggregate {
        case .count, .approxCountDistinct: return .int(0)
        case .sum: return .double(0)
        default: return nil
        }
    }
}
