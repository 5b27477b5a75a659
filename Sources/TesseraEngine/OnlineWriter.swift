import Logging
import TesseraCore
import TesseraRedis
import TesseraTopology

/// The online store writer: keeps the latest row of every entity changed since the last flush
/// and writes each once per flush, however hot the key (DESIGN §3), in pipelined chunks.
final class OnlineWriter: @unchecked Sendable {  // owned by the worker thread
    let layout: OnlineLayout
    let connection: RedisConnection
    private var views: [String: ViewLayout] = [:]
    private var pending: [Key: Pending] = [:]
    private var resp = RESPBuffer()
    private var scratch: [UInt8] = []
    /// Entity rows written to Redis so far, and Redis commands sent.
    private(set) var writes = 0
    private(set) var commands = 0

    struct Key: Hashable {
        var view: String
        var partition: Int32
    }

    struct ViewLayout {
        var name: [UInt8]
        var features: [[UInt8]]
        var types: [ValueType]
        var ttlMillis: Int64
    }

    /// The latest row of each changed entity of one view and partition.
    struct Pending {
        var slotOf: [Int32] = []
        var entities: [UInt32] = []
        var keyBytes: [UInt8] = []
        var keyEnds: [Int] = []
        var eventTime: [Micros] = []
        var createdTime: [Micros] = []
        var bits: [UInt64] = []
        var valid: [Bool] = []
        var text: [UInt8] = []
        var textRanges: [Range<Int>] = []
        var count: Int { entities.count }
    }

    init(layout: OnlineLayout, connection: RedisConnection, views: [FeatureView]) {
        self.layout = layout
        self.connection = connection
        for v in views where v.online {
            self.views[v.name] = ViewLayout(name: Array(v.name.utf8), features: v.spec.features.map { Array($0.name.utf8) },
                                            types: v.spec.features.map { v.spec.outputType(of: $0) }, ttlMillis: v.ttl / 1_000)
        }
    }

    var pendingRows: Int { pending.values.reduce(0) { $0 + $1.count } }

    /// Records the emissions of a view; an entity's later row replaces its earlier one.
    func add(view: String, partition: Int32, emissions e: EmissionBatch, created: [Micros]) {
        guard let v = views[view], e.count > 0 else { return }
        let key = Key(view: view, partition: partition)
        var p = pending.removeValue(forKey: key) ?? Pending()
        let nf = v.features.count
        for i in 0..<e.count {
            let entity = Int(e.entityIds[i])
            if entity >= p.slotOf.count { p.slotOf.append(contentsOf: repeatElement(-1, count: entity + 1 - p.slotOf.count)) }
            var slot = Int(p.slotOf[entity])
            if slot < 0 {
                slot = p.count
                p.slotOf[entity] = Int32(slot)
                p.entities.append(UInt32(entity))
                layout.appendKey(view: v.name, keys: e.keys, row: i, to: &p.keyBytes)
                p.keyEnds.append(p.keyBytes.count)
                p.eventTime.append(0)
                p.createdTime.append(0)
                p.bits.append(contentsOf: repeatElement(0, count: nf))
                p.valid.append(contentsOf: repeatElement(false, count: nf))
                p.textRanges.append(contentsOf: repeatElement(0..<0, count: nf))
            }
            p.eventTime[slot] = e.eventTimes[i]
            p.createdTime[slot] = created[i]
            for f in 0..<nf {
                let column = e.features[f]
                let at = slot * nf + f
                p.valid[at] = column.validity[i]
                guard column.validity[i] else { continue }
                switch column.type {
                case .int64, .bool: p.bits[at] = UInt64(bitPattern: column.ints[i])
                case .float64: p.bits[at] = column.doubles[i].bitPattern
                case .string:
                    let start = p.text.count
                    column.withUTF8(at: i) { p.text.append(contentsOf: $0) }
                    p.textRanges[at] = start..<p.text.count
                }
            }
        }
        pending[key] = p
    }

    /// Writes every pending row (only those of `partitions` if given). On a Redis failure the rows
    /// stay pending and the error is thrown; the caller retries with backoff.
    func flush(partitions: Set<Int32>? = nil, chunk: Int = 2_000) throws {
        for (key, p) in pending where p.count > 0 && (partitions?.contains(key.partition) ?? true) {
            guard let v = views[key.view] else { continue }
            var start = 0
            while start < p.count {
                let end = min(p.count, start + chunk)
                resp.removeAll()
                for slot in start..<end { encode(slot, p, v) }
                let (errors, first) = try connection.sendChecked(resp)
                if errors > 0 {
                    throw RedisError(message: "Redis refused \(errors) writes of view \(key.view): \(first ?? "")", isRetriable: false)
                }
                commands += resp.commands
                writes += end - start
                start = end
            }
            // Reset for the next interval, keeping capacity.
            var cleared = p
            for e in cleared.entities { cleared.slotOf[Int(e)] = -1 }
            cleared.entities.removeAll(keepingCapacity: true)
            cleared.keyBytes.removeAll(keepingCapacity: true)
            cleared.keyEnds.removeAll(keepingCapacity: true)
            cleared.eventTime.removeAll(keepingCapacity: true)
            cleared.createdTime.removeAll(keepingCapacity: true)
            cleared.bits.removeAll(keepingCapacity: true)
            cleared.valid.removeAll(keepingCapacity: true)
            cleared.text.removeAll(keepingCapacity: true)
            cleared.textRanges.removeAll(keepingCapacity: true)
            pending[key] = cleared
        }
    }

    /// Drops pending rows of partitions that are no longer ours.
    func discard(partitions: Set<Int32>) {
        for key in pending.keys where partitions.contains(key.partition) { pending[key] = nil }
    }

    /// HSET key f v … _event_ts t _created_ts c; HDEL key <null features>; PEXPIRE key ttl.
    private func encode(_ slot: Int, _ p: Pending, _ v: ViewLayout) {
        let nf = v.features.count
        let keyStart = slot == 0 ? 0 : p.keyEnds[slot - 1]
        let present = (0..<nf).filter { p.valid[slot * nf + $0] }.count
        p.keyBytes.withUnsafeBytes { all in
            let key = UnsafeRawBufferPointer(rebasing: all[keyStart..<p.keyEnds[slot]])
            resp.begin(arguments: 2 + 2 * (present + 2))
            resp.argument(OnlineWriter.hset)
            resp.argument(key)
            for f in 0..<nf where p.valid[slot * nf + f] {
                resp.argument(v.features[f])
                scratch.removeAll(keepingCapacity: true)
                let bits = p.bits[slot * nf + f]
                switch v.types[f] {
                case .int64: OnlineLayout.appendDecimal(Int64(bitPattern: bits), to: &scratch)
                case .float64: OnlineLayout.appendDouble(Double(bitPattern: bits), to: &scratch)
                case .bool: scratch.append(contentsOf: bits != 0 ? OnlineWriter.trueText : OnlineWriter.falseText)
                case .string: scratch.append(contentsOf: p.text[p.textRanges[slot * nf + f]])
                }
                resp.argument(scratch)
            }
            resp.argument(OnlineWriter.eventField)
            scratch.removeAll(keepingCapacity: true)
            OnlineLayout.appendDecimal(p.eventTime[slot], to: &scratch)
            resp.argument(scratch)
            resp.argument(OnlineWriter.createdField)
            scratch.removeAll(keepingCapacity: true)
            OnlineLayout.appendDecimal(p.createdTime[slot], to: &scratch)
            resp.argument(scratch)
            if present < nf {
                resp.begin(arguments: 2 + nf - present)
                resp.argument(OnlineWriter.hdel)
                resp.argument(key)
                for f in 0..<nf where !p.valid[slot * nf + f] { resp.argument(v.features[f]) }
            }
            if v.ttlMillis > 0 {
                resp.begin(arguments: 3)
                resp.argument(OnlineWriter.pexpire)
                resp.argument(key)
                scratch.removeAll(keepingCapacity: true)
                OnlineLayout.appendDecimal(v.ttlMillis, to: &scratch)
                resp.argument(scratch)
            }
        }
    }

    static let hset = Array("HSET".utf8), hdel = Array("HDEL".utf8), pexpire = Array("PEXPIRE".utf8)
    static let eventField = Array(OnlineLayout.eventTimeField.utf8), createdField = Array(OnlineLayout.createdTimeField.utf8)
    static let trueText = Array("true".utf8), falseText = Array("false".utf8)
}
