import TesseraCore
import TesseraOffline
import TesseraTopology

/// Every offline row of one entity, in point-in-time order (event time, then created time).
/// A simple scan for tools and the demo; training sets use the point-in-time join.
public struct OfflineHistory: Sendable {
    public struct Row: Sendable {
        public var time: Micros
        public var created: Micros
        public var features: [Value?]
    }

    public private(set) var rows: [Row] = []

    public init(directory: String, view: FeatureView, key: [Value]) throws {
        let keys = view.joinKeys.count, features = view.spec.features.count
        for file in OfflineLog.files(directory: directory, view: view.name) {
            let columns = try ParquetFileReader(path: file).readAll()
            for i in 0..<(columns.first?.count ?? 0) where (0..<keys).allSatisfy({ columns[$0].value(at: i) == key[$0] }) {
                guard case .int(let t) = columns[keys + features].value(at: i), case .int(let c) = columns[keys + features + 1].value(at: i) else { continue }
                rows.append(Row(time: t, created: c, features: (0..<features).map { columns[keys + $0].value(at: i) }))
            }
        }
        rows.sort { ($0.time, $0.created) < ($1.time, $1.created) }
    }

    /// The latest row with event time ≤ `time` (ties: the later created).
    public func row(asOf time: Micros) -> Row? { rows.last { $0.time <= time } }
}
