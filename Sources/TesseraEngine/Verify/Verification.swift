import Foundation
import TesseraCore
import TesseraLog
import TesseraOffline
import TesseraOnline
import TesseraRedis
import TesseraTopology

/// `tessera verify`: samples entities of the group's checkpoints and holds each one's online row
/// against its current row in the checkpointed state and against its latest offline row
/// (docs/design.md, "Online = offline"). Rows are matched by created timestamp (`OnlineCheck`):
/// beside a running worker, an online row newer than the checkpoint or than the offline log is
/// counted as `newer`, not as a mismatch; once the input is drained all three agree.
public struct Verification {
    public struct Options: Sendable {
        public var topologies: [Topology]
        public var offlineDirectory: String
        public var stateDirectory: String
        public var group: String
        public var redis: RedisEndpoint
        public var keyPrefix = "tessera:"
        /// Entities sampled over every online view and partition (all of them when there are fewer).
        public var sample = 1_000
        /// Only these views (default: every online view).
        public var views: [String] = []
        public var seed: UInt64?

        public init(topologies: [Topology], offlineDirectory: String, stateDirectory: String, group: String, redis: RedisEndpoint) {
            self.topologies = topologies
            self.offlineDirectory = offlineDirectory
            self.stateDirectory = stateDirectory
            self.group = group
            self.redis = redis
        }
    }

    /// One sampled entity whose online row is wrong.
    public struct Finding: Sendable {
        public var view: FeatureView
        public var topic: String
        public var partition: Int32
        public var key: [Value]
        public var redisKey: String
        /// "state" or "offline".
        public var against: String
        public var check: OnlineCheck
        public var online: OnlineRow
        public var expected: ExpectedRow
    }

    public struct Report: Sendable {
        /// Entities of the online views in the checkpoints, and how many were sampled.
        public var entities = 0
        public var sampled = 0
        /// Per view, per comparison ("state", "offline"), how many rows came out how.
        public var counts: [String: [String: [OnlineCheck: Int]]] = [:]
        public var mismatches: [Finding] = []
    }

    public let options: Options

    public init(_ options: Options) { self.options = options }

    struct Pick {
        var view: FeatureView
        var topic: String
        var partition: Int32
        var key: [Value]
        var state: ExpectedRow
        var offline: ExpectedRow?
        var online = OnlineRow(key: [], fields: [:])
    }

    public func run(now: Micros) throws -> Report {
        let store = CheckpointStore(stateDirectory: options.stateDirectory, group: options.group)
        var report = Report()
        // Every (partition, online view) of the checkpoints, with its entity count.
        var cores: [(topic: String, partition: Int32, views: [FeatureView], core: PartitionAggregator)] = []
        for topology in options.topologies {
            for source in topology.sources {
                let views = topology.views.filter { $0.source == source.name }
                guard views.contains(where: { $0.online && (options.views.isEmpty || options.views.contains($0.name)) }) else { continue }
                for partition in Self.partitions(in: "\(store.directory)/\(source.topic)") {
                    guard let saved = try store.load(topic: source.topic, partition: partition) else { continue }
                    let core = try PartitionAggregator(views: views.map(\.spec), allowedLateness: source.allowedLateness, restoring: saved.state)
                    cores.append((source.topic, partition, views, core))
                }
            }
        }
        var slots: [(core: Int, view: Int, count: Int)] = []
        for (c, entry) in cores.enumerated() {
            for (v, view) in entry.views.enumerated() where view.online && (options.views.isEmpty || options.views.contains(view.name)) {
                let n = entry.core.views.first { $0.spec.name == view.name }?.entityCount ?? 0
                if n > 0 { slots.append((c, v, n)) }
            }
        }
        report.entities = slots.reduce(0) { $0 + $1.count }
        var chosen = Self.choose(options.sample, of: report.entities, seed: options.seed)
        chosen.sort()
        // The sampled entities' current rows in the state.
        var picks: [Pick] = []
        var base = 0, next = 0
        for slot in slots {
            var ids: [Int] = []
            while next < chosen.count && chosen[next] < base + slot.count {
                ids.append(chosen[next] - base)
                next += 1
            }
            base += slot.count
            let view = cores[slot.core].views[slot.view]
            guard let v = cores[slot.core].core.views.firstIndex(where: { $0.spec.name == view.name }) else { continue }
            for id in ids {
                let (rows, created) = cores[slot.core].core.currentRows(view: v, id..<id + 1)
                let row = rows.row(0)
                picks.append(Pick(view: view, topic: cores[slot.core].topic, partition: cores[slot.core].partition, key: row.key,
                                  state: ExpectedRow(time: row.time, created: created[0], features: row.features,
                                                     added: ExpectedRow.added(cores[slot.core].core.views[v].spec))))
            }
        }
        report.sampled = picks.count
        try readOnline(&picks)
        try readOffline(&picks)
        for p in picks {
            var against: [(String, ExpectedRow)] = [("state", p.state)]
            if p.view.offline { against.append(("offline", p.offline ?? ExpectedRow(time: .min, created: .min, features: []))) }
            for (name, expected) in against {
                let check: OnlineCheck
                if name == "offline" && p.offline == nil {
                    // Not in the offline log yet (its rows are still open, or not rolled).
                    check = p.online.isAbsent ? .missing : .newer
                } else {
                    check = OnlineCheck.compare(online: p.online, expected: expected, view: p.view, now: now)
                }
                report.counts[p.view.name, default: [:]][name, default: [:]][check, default: 0] += 1
                if check.isMismatch {
                    report.mismatches.append(Finding(view: p.view, topic: p.topic, partition: p.partition, key: p.key,
                                                     redisKey: OnlineLayout(prefix: options.keyPrefix).display(p.view, key: p.key),
                                                     against: name, check: check, online: p.online, expected: expected))
                }
            }
        }
        return report
    }

    /// The partitions with a checkpoint file in a topic's directory.
    static func partitions(in directory: String) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { $0.hasSuffix(".state") ? Int32($0.dropLast(".state".count)) : nil }.sorted()
    }

    /// `n` distinct numbers of `0..<total` (all of them when `n ≥ total`).
    static func choose(_ n: Int, of total: Int, seed: UInt64?) -> [Int] {
        guard n < total else { return Array(0..<total) }
        var generator = SeededGenerator(seed: seed ?? UInt64.random(in: 0...UInt64.max))
        var chosen = Set<Int>()
        while chosen.count < n { chosen.insert(Int(generator.next() % UInt64(total))) }
        return Array(chosen)
    }

    private func readOnline(_ picks: inout [Pick]) throws {
        let connection = RedisConnection(endpoint: options.redis, logger: .init(label: "tessera-verify"))
        let layout = OnlineLayout(prefix: options.keyPrefix)
        for start in stride(from: 0, to: picks.count, by: 1_000) {
            let range = start..<min(picks.count, start + 1_000)
            var resp = RESPBuffer()
            for p in picks[range] { layout.appendRead(p.view, key: p.key, to: &resp) }
            let replies = try connection.send(resp)
            for (i, reply) in zip(range, replies) {
                let p = picks[i]
                picks[i].online = try OnlineRow(view: p.view, key: p.key, layout: layout, reply: reply)
            }
        }
    }

    /// Each pick's latest offline row (largest event time, then created time) in its partition's files.
    private func readOffline(_ picks: inout [Pick]) throws {
        var groups: [String: [Int]] = [:]
        for (i, p) in picks.enumerated() where p.view.offline { groups["\(p.view.name)\u{0}\(p.partition)", default: []].append(i) }
        for (_, members) in groups {
            let view = picks[members[0]].view, partition = picks[members[0]].partition
            var wanted: [[Value]: Int] = [:]
            for i in members { wanted[picks[i].key] = i }
            let keys = view.joinKeys.count, features = view.spec.features.count
            let marker = "/partition=\(partition)/"
            for file in OfflineLog.files(directory: options.offlineDirectory, view: view.name) where file.contains(marker) {
                let columns = try ParquetFileReader(path: file).readAll()
                for r in 0..<(columns.first?.count ?? 0) {
                    let key = (0..<keys).compactMap { columns[$0].value(at: r) }
                    guard key.count == keys, let i = wanted[key],
                          case .int(let t) = columns[keys + features].value(at: r), case .int(let c) = columns[keys + features + 1].value(at: r) else { continue }
                    if let seen = picks[i].offline, (seen.time, seen.created) >= (t, c) { continue }
                    picks[i].offline = ExpectedRow(time: t, created: c, features: (0..<features).map { columns[keys + $0].value(at: r) })
                }
            }
        }
    }
}
