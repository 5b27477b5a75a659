/// Changes of entities' feature rows, in stream-time order: the output of the core that the
/// sinks consume (Redis keeps the last row per entity, the offline log keeps every row).
///
/// Row `i` is entity `entityIds[i]` (keys in `keys`, one column per join key) with the feature
/// values `features[f][i]` in view order, current from `eventTimes[i]` (the partition's stream
/// time when the value became current) until the entity's next row.
public struct EmissionBatch: Sendable {
    public var eventTimes: [Micros] = []
    public var entityIds: [UInt32] = []
    /// The input row of the ingested batch that closed row `i` — the first whose event moved
    /// stream time past the row's time; the batch's row count when the batch's end (or the end of
    /// the run) closed it; −1 while the row is still open (stream time is still at its time, more
    /// events may change it). Closed rows are final; an open row is re-emitted, closed, later.
    public var closers: [Int32] = []

    /// Rows `0..<closedCount` are closed, the rest open (open rows all have the latest time).
    public var closedCount: Int { closers.firstIndex(of: -1) ?? closers.count }
    public var keys: [Column]
    public var features: [Column]

    public init(keyTypes: [ValueType], featureTypes: [ValueType]) {
        keys = keyTypes.map(Column.init(type:))
        features = featureTypes.map(Column.init(type:))
    }

    public var count: Int { eventTimes.count }
    public var isEmpty: Bool { eventTimes.isEmpty }

    public mutating func removeAll() {
        eventTimes.removeAll(keepingCapacity: true)
        entityIds.removeAll(keepingCapacity: true)
        closers.removeAll(keepingCapacity: true)
        for i in keys.indices { keys[i].removeAll() }
        for i in features.indices { features[i].removeAll() }
    }

    /// Row `i` as values (nil for null), for tests and tools.
    public func row(_ i: Int) -> (time: Micros, key: [Value], features: [Value?]) {
        (eventTimes[i], keys.map { $0.value(at: i)! }, features.map { $0.value(at: i) })
    }
}
