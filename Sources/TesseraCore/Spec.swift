/// What a feature view computes, in the core's terms: field indices instead of names,
/// microseconds instead of duration strings. Built by the topology compiler (or by tests).

/// The aggregates of a feature.
public enum Aggregate: String, Sendable, Hashable, CaseIterable {
    case count, sum, mean, min, max, first, last, variance, stddev
    case approxCountDistinct = "approx_count_distinct"
    case approxPercentile = "approx_percentile"

    /// Whether the aggregate reads a field, and which field types it accepts.
    public var fieldRequirement: FieldRequirement {
        switch self {
        case .count: return .optional
        case .sum, .mean, .min, .max, .variance, .stddev, .approxPercentile: return .numeric
        case .first, .last, .approxCountDistinct: return .any
        }
    }

    public enum FieldRequirement: Sendable { case optional, numeric, any }

    /// The type of the feature's value given the type of its field.
    public func outputType(fieldType: ValueType?) -> ValueType {
        switch self {
        case .count, .approxCountDistinct: return .int64
        case .sum, .mean, .min, .max, .variance, .stddev, .approxPercentile: return .float64
        case .first, .last: return fieldType ?? .int64
        }
    }
}

/// A window: a sliding (sawtooth) window of `length` kept in tiles of `hop`, or the entity's lifetime.
public enum Window: Sendable, Hashable, CustomStringConvertible {
    case lifetime
    case sliding(length: Micros, hop: Micros)

    /// Most tiles a window may span (window ÷ hop): tiles are numbered relative to one another in
    /// 26 bits inside sliding sketches, which leaves room for a window and its lateness.
    public static let maxTiles: Int64 = 1 << 20

    /// `W ≤ 12h → 5m`, `W ≤ 12d → 1h`, else `1d`.
    public static func defaultHop(for length: Micros) -> Micros {
        if length <= 12 * Time.hour { return 5 * Time.minute }
        if length <= 12 * Time.day { return Time.hour }
        return Time.day
    }

    public var description: String {
        switch self {
        case .lifetime: return "lifetime"
        case .sliding(let w, let h): return "\(Time.format(duration: w))/\(Time.format(duration: h))"
        }
    }
}

/// The fields of a source, in the order the decoder fills a `ColumnBatch`.
public struct Schema: Sendable, Hashable {
    public var names: [String]
    public var types: [ValueType]

    public init(_ fields: [(String, ValueType)]) {
        names = fields.map(\.0)
        types = fields.map(\.1)
    }

    public func index(of name: String) -> Int? { names.firstIndex(of: name) }
}

public struct FeatureSpec: Sendable, Hashable {
    public var name: String
    public var aggregate: Aggregate
    /// Index of the aggregated field in the source schema; nil only for `count`.
    public var field: Int?
    public var window: Window
    public var filter: Predicate?
    /// The quantile in `[0, 1]` of an `approx_percentile`.
    public var percentile: Double?
    /// When the feature joined its view's state: 0 from the start, n for a feature added to a
    /// running view at its n-th change (see `ViewSpec.reconciled(withSaved:)`). Features of
    /// different generations keep separate tiles and partials, so an added feature starts from
    /// empty state while the others carry on.
    public var generation = 0

    public init(name: String, aggregate: Aggregate, field: Int? = nil, window: Window,
                filter: Predicate? = nil, percentile: Double? = nil) {
        self.name = name
        self.aggregate = aggregate
        self.field = field
        self.window = window
        self.filter = filter
        self.percentile = percentile
    }
}

public struct SpecError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// A feature view as the core runs it: the source schema, the entity key fields, the features.
public struct ViewSpec: Sendable, Hashable {
    public var name: String
    public var schema: Schema
    /// Indices of the join-key fields in the schema (int64 or string), in the entity's order.
    public var keyFields: [Int]
    public var features: [FeatureSpec]

    public init(name: String, schema: Schema, keyFields: [Int], features: [FeatureSpec]) throws {
        self.name = name
        self.schema = schema
        self.keyFields = keyFields
        self.features = features
        try validate()
    }

    public var keyNames: [String] { keyFields.map { schema.names[$0] } }
    public var keyTypes: [ValueType] { keyFields.map { schema.types[$0] } }

    public func outputType(of feature: FeatureSpec) -> ValueType {
        feature.aggregate.outputType(fieldType: feature.field.map { schema.types[$0] })
    }

    /// A canonical description of everything that shapes the aggregation state. Two specs with the
    /// same fingerprint can share checkpoints; state restored under another fingerprint is refused.
    public var fingerprint: String {
        var lines = ["view \(name)", "keys \(keyFields.map { "\(schema.names[$0]):\(schema.types[$0].rawValue)" }.joined(separator: ","))"]
        for f in features {
            var line = "\(f.name) = \(f.aggregate.rawValue)(\(f.field.map { schema.names[$0] } ?? "")) over \(f.window)"
            if let p = f.percentile { line += " p=\(p)" }
            if let w = f.filter { line += " where \(w.text(names: schema.names))" }
            if f.generation > 0 { line += " @gen\(f.generation)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    /// This definition fitted to state saved under `saved` (a fingerprint): features saved
    /// keep their generation, added features get a new one and start from empty state. Throws
    /// `StateMismatchError` when a saved feature was changed, removed or reordered, or the keys
    /// changed: the saved partials cannot serve the new definition.
    public func reconciled(withSaved saved: String) throws -> ViewSpec {
        func parse(_ fingerprint: String) -> (keys: String, features: [(name: String, definition: String, generation: Int)]) {
            let lines = fingerprint.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            var features: [(String, String, Int)] = []
            for line in lines.dropFirst(2) {
                var definition = line
                var generation = 0
                if let at = line.ranges(of: " @gen").last, let g = Int(line[at.upperBound...]) {
                    generation = g
                    definition = String(line[..<at.lowerBound])
                }
                let name = definition.firstRange(of: " = ").map { String(definition[..<$0.lowerBound]) } ?? definition
                features.append((name, definition, generation))
            }
            return (lines.count > 1 ? lines[1] : "", features)
        }
        let old = parse(saved), now = parse(fingerprint)
        var problems: [String] = []
        if old.keys != now.keys { problems.append("the entity keys changed (saved \(old.keys), now \(now.keys))") }
        for f in old.features {
            guard let current = now.features.first(where: { $0.name == f.name }) else {
                problems.append("feature \(f.name) was removed (saved: \(f.definition))")
                continue
            }
            if current.definition != f.definition { problems.append("feature \(f.name) changed: \(f.definition) → \(current.definition)") }
        }
        let kept = now.features.map(\.name).filter { name in old.features.contains { $0.name == name } }
        if problems.isEmpty && kept != old.features.map(\.name) {
            problems.append("features were reordered (saved order \(old.features.map(\.name).joined(separator: ", ")))")
        }
        guard problems.isEmpty else { throw StateMismatchError(view: name, problems: problems) }
        var result = self
        let next = (old.features.map(\.generation).max() ?? 0) + 1
        for i in result.features.indices {
            result.features[i].generation = old.features.first { $0.name == result.features[i].name }?.generation ?? next
        }
        return result
    }

    private func validate() throws {
        func fail(_ m: String) -> SpecError { SpecError(description: "view \(name): \(m)") }
        guard !keyFields.isEmpty else { throw fail("an entity needs at least one join key") }
        for k in keyFields {
            guard schema.types.indices.contains(k) else { throw fail("join key field #\(k) is not in the schema") }
            guard [.int64, .string].contains(schema.types[k]) else {
                throw fail("join key \(schema.names[k]) must be int64 or string, not \(schema.types[k].rawValue)")
            }
        }
        var names = Set<String>()
        for f in features {
            guard names.insert(f.name).inserted else { throw fail("feature \(f.name) is defined twice") }
            if let field = f.field, !schema.types.indices.contains(field) { throw fail("feature \(f.name): field #\(field) is not in the schema") }
            switch f.aggregate.fieldRequirement {
            case .optional: break
            case .any: guard f.field != nil else { throw fail("feature \(f.name): \(f.aggregate.rawValue) needs a field") }
            case .numeric:
                guard let field = f.field else { throw fail("feature \(f.name): \(f.aggregate.rawValue) needs a field") }
                guard [.int64, .float64].contains(schema.types[field]) else {
                    throw fail("feature \(f.name): \(f.aggregate.rawValue) needs a numeric field, \(schema.names[field]) is \(schema.types[field].rawValue)")
                }
            }
            if case .sliding(let w, let h) = f.window {
                guard h > 0, w >= h, w % h == 0 else { throw fail("feature \(f.name): the hop must divide the window") }
                guard w / h <= Window.maxTiles else { throw fail("feature \(f.name): the window spans more than \(Window.maxTiles) tiles") }
            }
            if f.aggregate == .approxPercentile {
                guard let p = f.percentile, p >= 0, p <= 1 else { throw fail("feature \(f.name): approx_percentile needs a percentile in [0, 1]") }
            }
            if let w = f.filter, let bad = w.fields.first(where: { !schema.types.indices.contains($0) }) {
                throw fail("feature \(f.name): filter field #\(bad) is not in the schema")
            }
        }
    }
}
