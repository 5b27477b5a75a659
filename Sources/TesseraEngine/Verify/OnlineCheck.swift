import TesseraCore
import TesseraOnline
import TesseraTopology

/// An entity's online row held against a row it must equal or follow — the state's current row,
/// or the latest offline row (docs/design.md, "Online = offline"). Rows are told apart by their
/// created timestamp, unique per partition and emission: the same one must hold the same values.
public enum OnlineCheck: String, Sendable, CaseIterable, Codable {
    /// The same row: event time and every feature equal.
    case equal
    /// Redis has no row although the entity's row is younger than the view's TTL.
    case missing
    /// Redis holds an earlier row than the one it must hold.
    case older
    /// Redis holds the same row (created timestamp) with other values or event time.
    case differs
    /// Redis holds a later row (written after the checkpoint, or not in the offline log yet).
    case newer
    /// Redis has no row and the entity's row is older than the TTL: its key expired.
    case expired

    /// Whether this outcome means the online store is wrong.
    public var isMismatch: Bool { self == .missing || self == .older || self == .differs }

    /// Compares `online` with `expected`; `now` (wall clock, µs) tells an expired key from a lost one.
    public static func compare(online: OnlineRow, expected: ExpectedRow, view: FeatureView, now: Micros) -> OnlineCheck {
        if online.isAbsent {
            return view.ttl > 0 && expected.created > 0 && now - expected.created > view.ttl ? .expired : .missing
        }
        // A feature added to the view after the row was written: the row lacks it, where the
        // state counts it from empty (0 for count and sum).
        var features = expected.features
        for f in expected.added where online.fields[view.spec.features[f].name] == nil {
            if [.count, .sum].contains(view.spec.features[f].aggregate), features[f] == .int(0) || features[f] == .double(0) { features[f] = nil }
        }
        let same = online.eventTime == expected.time && online.matches(features, view: view)
        guard let created = online.createdTime else { return .differs }
        if created < expected.created { return .older }
        if created > expected.created { return .newer }
        return same ? .equal : .differs
    }
}

/// A row an entity's online row is held against.
public struct ExpectedRow: Sendable {
    public var time: Micros
    public var created: Micros
    public var features: [Value?]
    /// The features added to the view since its state began (a later generation): rows written
    /// before they existed lack them.
    public var added: [Int]

    public init(time: Micros, created: Micros, features: [Value?], added: [Int] = []) {
        self.time = time
        self.created = created
        self.features = features
        self.added = added
    }

    /// The features of a view's state that joined it after it began.
    public static func added(_ spec: ViewSpec) -> [Int] { spec.features.indices.filter { spec.features[$0].generation > 0 } }
}
