import Logging
import TesseraCore
import TesseraOnline
import TesseraRedis
import TesseraTopology

/// The worker's own check of the online store. Once per checkpoint round, at a moment the flusher
/// has written everything handed to it, a few random entities of the owned partitions without a
/// row still pending in the writer are read back from Redis and held against their current rows
/// in the state (which the offline log's latest rows equal, invariant 3). A mismatch is counted
/// (`tessera_online_offline_mismatches_total`) and logged; `tessera verify` looks closer.
final class OnlineSampler {
    private let connection: RedisConnection
    private let layout: OnlineLayout
    private let table: PartitionTable
    private let online: OnlineWriter
    private let telemetry: Telemetry
    private let logger: Logger
    private let clock: any WallClock
    /// Entities read per round.
    let perRound: Int
    private var random = SystemRandomNumberGenerator()

    init(connection: RedisConnection, layout: OnlineLayout, table: PartitionTable, online: OnlineWriter, telemetry: Telemetry,
         logger: Logger, clock: any WallClock, perRound: Int) {
        self.connection = connection
        self.layout = layout
        self.table = table
        self.online = online
        self.telemetry = telemetry
        self.logger = logger
        self.clock = clock
        self.perRound = perRound
    }

    /// One round. Redis failing to answer skips it (the writer reports an outage); a partition
    /// whose rows are being rewritten, or not yet checked, is not sampled, nor one whose state a
    /// checkpoint is still writing (reading a current row would copy all of that state on the
    /// worker's loop: a 0.3 s stall on `standard`).
    func sample() {
        guard perRound > 0, !online.sentinelsPending else { return }
        var candidates: [(entry: PartitionTable.Entry, view: Int)] = []
        for e in table.entries {
            for (v, view) in e.pipeline.views.enumerated()
            where view.online && e.pipeline.core.views[v].entityCount > 0 && !e.pipeline.isStateShared(view: v) {
                candidates.append((e, v))
            }
        }
        guard !candidates.isEmpty else { return }
        var picks: [(view: FeatureView, redisKey: String, key: [Value], expected: ExpectedRow)] = []
        var resp = RESPBuffer()
        for _ in 0..<perRound {
            let (entry, v) = candidates.randomElement(using: &random)!
            let id = Int.random(in: 0..<entry.pipeline.core.views[v].entityCount, using: &random)
            let view = entry.pipeline.views[v]
            guard !online.hasPendingRow(view: view.name, partition: entry.pipeline.partition, entity: UInt32(id)) else { continue }
            let (rows, created) = entry.pipeline.currentRows(view: v, id..<id + 1)
            guard rows.count == 1 else { continue }
            let row = rows.row(0)
            let redisKey = layout.display(view, key: row.key)
            layout.appendRead(view, key: row.key, to: &resp)
            picks.append((view, redisKey, row.key, ExpectedRow(time: row.time, created: created[0], features: row.features,
                                                               added: ExpectedRow.added(entry.pipeline.core.views[v].spec))))
        }
        let replies: [RedisReply]
        do { replies = try connection.send(resp) } catch {
            logger.debug("online sample skipped: \(error)")
            return
        }
        let now = clock.now()
        var mismatches = 0
        for (pick, reply) in zip(picks, replies) {
            let check: OnlineCheck
            do {
                let row = try OnlineRow(view: pick.view, key: pick.key, layout: layout, reply: reply)
                check = OnlineCheck.compare(online: row, expected: pick.expected, view: pick.view, now: now)
            } catch {
                check = .differs
            }
            guard check.isMismatch else { continue }
            mismatches += 1
            logger.warning("the online row of \(pick.redisKey) is not the state's current row (\(check.rawValue)); run tessera verify",
                           metadata: ["key": "\(pick.redisKey)", "check": "\(check.rawValue)"])
        }
        telemetry.sampledOnline(picks.count, mismatches: mismatches)
    }
}
