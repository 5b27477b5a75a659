import Foundation
import Logging
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline

/// The checkpoint-then-commit protocol: offsets are committed only behind durable output.
///
/// `makeDurable` hands the offline files to the storage thread; a checkpoint round flushes the
/// dead letters here and now, then queues, partition by partition, the partition's offline
/// files, a wait for Redis to hold the rows so far (or, when asked to wait, flushes Redis here)
/// and the partition's checkpoint; then a mark. When the mark comes out (`checkStorage` between polls, or
/// `awaitStorage`), everything before it is durable and the offsets noted with the round are
/// committed — for partitions still owned by the same entry that noted them (a partition that
/// changed hands is its new owner's to commit). Retriable failures are retried with backoff; meanwhile the worker does
/// not poll, so nothing buffers without bound.
final class CommitCoordinator {
    private let online: OnlineWriter
    private let offline: OfflineLog
    private let deadLetters: DeadLetterSink
    private let storage: DurableWriter
    private let snapshots: SnapshotTaker
    private let checkpoints: CheckpointStore?
    private let consumer: KafkaConsumer
    private let table: PartitionTable
    private let telemetry: Telemetry
    private let logger: Logger
    private let maxPendingBytes: Int
    /// Set by `Worker.run`: once a stop is asked for, how long waits may still go on.
    var stop = StopDeadline(StopRequest(), timeout: .zero)
    /// Reads a few rows back from Redis after each checkpoint round's flush.
    var sampler: OnlineSampler?
    /// A checkpoint round began since the last sample.
    private var sampleDue = false

    /// Checkpoint rounds queued on the storage thread, by mark: when the round began, and the
    /// offsets to commit (with the entry they belong to) once it is durable.
    private var rounds: [Int: (started: ContinuousClock.Instant, commit: [TopicPartition: (Int64, PartitionTable.Entry)])] = [:]
    private var nextMark = 0
    /// The storage thread's failing write last reported.
    private var trouble: (task: String, error: String)?

    init(online: OnlineWriter, offline: OfflineLog, deadLetters: DeadLetterSink, storage: DurableWriter, snapshots: SnapshotTaker, checkpoints: CheckpointStore?,
         consumer: KafkaConsumer, table: PartitionTable, telemetry: Telemetry, logger: Logger, maxPendingBytes: Int) {
        self.online = online
        self.offline = offline
        self.deadLetters = deadLetters
        self.storage = storage
        self.snapshots = snapshots
        self.checkpoints = checkpoints
        self.consumer = consumer
        self.table = table
        self.telemetry = telemetry
        self.logger = logger
        self.maxPendingBytes = maxPendingBytes
    }

    /// Hands the offline rows so far to the storage thread. With `checkpoint`, also checkpoints
    /// the partitions (all, or `only` these numbers) and commits their offsets behind the
    /// checkpoints and behind Redis holding every row they count as emitted.
    ///
    /// A checkpoint round takes one partition at a time (`advanceRound`): its state is handed to
    /// the snapshot thread as a copy that shares the live state's memory, and its records are
    /// held back until that thread has written it (`SnapshotTaker`), so the loop copies nothing.
    /// Each partition's checkpoint is consistent on its own (its state, offsets and offline
    /// sequences are taken together). With `wait` (a revoke, a stop) the round is taken whole,
    /// here, after Redis has caught up, and waited for.
    func makeDurable(partitions only: Set<Int32>?, checkpoint: Bool, wait: Bool) throws {
        guard checkpoint else {
            storage.enqueue(offline.detach(partitions: only).map { DurableWriter.Job.offline($0) })
            if wait || storage.pendingBytes > maxPendingBytes { try awaitStorage() }
            return
        }
        if open != nil { try advanceRound(all: true) }
        if !rounds.isEmpty {
            // One checkpoint round at a time: the state is not copied again while the last copy
            // still waits to be written.
            try awaitStorage()
        }
        if wait {
            try flushOnline()
            sampler?.sample()
        } else {
            sampleDue = true
        }
        try retrying("write dead letters", component: "dead_letters") {
            do { try deadLetters.flush() } catch let e as any TesseraError { throw e } catch { throw StorageError("\(error)") }
        }
        open = OpenRound(started: .now, remaining: table.partitions.filter { only?.contains($0.partition) ?? true }, next: .now)
        try advanceRound(all: wait)
        if wait { try awaitStorage() }
    }

    /// Hands the offline rows that fill a row group to the storage thread, which encodes,
    /// compresses and writes them to the file being built while the worker goes on: a roll then
    /// writes only the rest and the footer, and no interval's rows wait in memory for it.
    func handOverRowGroups() throws {
        let groups = offline.takeRowGroups()
        guard !groups.isEmpty else { return }
        storage.enqueue(groups.map { DurableWriter.Job.offline($0) })
        if storage.pendingBytes > maxPendingBytes { try awaitStorage() }
    }

    /// A checkpoint round being taken, one partition at a time.
    private struct OpenRound {
        var started: ContinuousClock.Instant
        var remaining: [TopicPartition]
        var commit: [TopicPartition: (Int64, PartitionTable.Entry)] = [:]
        /// When the next partition may be taken (once the last one's checkpoint is in place,
        /// too): one partition is held back at a time.
        var next: ContinuousClock.Instant
    }
    private var open: OpenRound?

    /// Between polls: checkpoints the next partition of the round being taken once its time has
    /// come and the last partition's checkpoint is in place (every one left, now, with `all`).
    /// Its offline files are handed over first, then a wait for
    /// Redis to hold the rows so far (a checkpoint must not be written ahead of the online rows it
    /// counts as emitted; the storage thread waits, the worker goes on), then its state. After the
    /// last partition, the round's mark.
    func advanceRound(all: Bool = false) throws {
        guard var round = open, all || (ContinuousClock.now >= round.next && !snapshots.isBusy) else { return }
        while let tp = round.remaining.first {
            guard let e = table[tp], e.pipeline.nextOffset >= 0 else {
                round.remaining.removeFirst()
                continue
            }
            // Taken whole, still one partition at a time: the last one is placed first.
            if checkpoints != nil && all && snapshots.isBusy { try awaitStorage() }
            round.remaining.removeFirst()
            var jobs = offline.detach(partitions: [tp.partition]).map { DurableWriter.Job.offline($0) }
            jobs.append(.online(online.mark()))
            if let checkpoints {
                let started = ContinuousClock.now
                // The state's copy shares its memory: the partition is held back until it is written.
                let position = e.pipeline.position(nextSequences: offline.nextSequences(partition: tp.partition))
                let checkpoint = snapshots.take(tp, state: e.pipeline.core, position: position, into: checkpoints)
                consumer.hold(tp)
                jobs.append(.checkpoint(checkpoint))
                telemetry.paused(forCheckpoint: .now - started)
                round.next = .now + .milliseconds(100)
            }
            if e.pipeline.nextOffset > e.committedOffset { round.commit[tp] = (e.pipeline.nextOffset, e) }
            storage.enqueue(jobs)
            if !all { break }
        }
        if round.remaining.isEmpty {
            rounds[nextMark] = (round.started, round.commit)
            storage.enqueue([.mark(nextMark)])
            nextMark += 1
            open = nil
        } else {
            open = round
        }
        // The disk is slower than the stream: stop consuming until it catches up.
        if storage.pendingBytes > maxPendingBytes { try awaitStorage() }
    }

    /// Returns once Redis holds every row so far, reporting while it waits, unless a stop gives up.
    func flushOnline() throws {
        do {
            try online.flush(whileWaiting: { self.telemetry.report() }, giveUp: { self.stop.mustGiveUp })
        } catch let e as OnlineWriteError {
            throw EngineError(.stopped, "\(e): \(stop.giveUpReason ?? "stopped")", remedy: e.remedy)
        }
    }

    /// Between polls: commits behind the rounds the storage thread has finished, and stops
    /// consuming (waiting, reporting) while one of its writes fails. Samples the online store
    /// once after each round, at a moment the flusher has written all it was handed.
    func checkStorage() throws {
        releaseHolds()
        try finishRounds()
        if storage.currentTrouble != nil { try awaitStorage() }
        if sampleDue && online.isFlusherIdle {
            sampler?.sample()
            sampleDue = false
        }
    }

    /// Waits until everything handed to the storage thread is durable, reporting meanwhile (and
    /// any write it is retrying); then commits behind the finished rounds.
    func awaitStorage() throws {
        // A checkpoint on the storage thread may wait for rows the worker still holds: hand them
        // over when the flusher is free (without waiting for Redis here).
        try online.handOverIfIdle()
        while !storage.waitUntilIdle(timeout: .milliseconds(100)) {
            try online.handOverIfIdle()
            if let t = storage.currentTrouble {
                if trouble?.task != t.task || trouble?.error != t.error {
                    logger.warning("cannot \(t.task), retrying: \(t.error)")
                    trouble = (t.task, t.error)
                }
                telemetry.retrying = t.task
            }
            if let reason = stop.giveUpReason {
                let what = telemetry.retrying ?? "write the offline log and checkpoints"
                storage.stop()
                throw EngineError(.stopped, "stopped while trying to \(what): \(reason)",
                                  remedy: "Nothing is lost: the next run resumes from the last checkpoint")
            }
            telemetry.report()
        }
        if trouble != nil {
            telemetry.retrying = nil
            trouble = nil
        }
        releaseHolds()
        try finishRounds()
    }

    /// Lets the records of the partitions whose states are written through again.
    private func releaseHolds() {
        for checkpoint in snapshots.takeFinished() {
            consumer.release(checkpoint.partition)
            if let took = checkpoint.took { telemetry.held(forCheckpoint: took) }
        }
    }

    /// Commits the offsets of every round now durable.
    private func finishRounds() throws {
        for mark in storage.takeFinishedMarks() {
            guard let round = rounds.removeValue(forKey: mark) else { continue }
            if checkpoints != nil { telemetry.checkpointed(started: round.started) }
            var commit: [TopicPartition: Int64] = [:]
            for (tp, (offset, entry)) in round.commit where table[tp] === entry && offset > entry.committedOffset {
                commit[tp] = offset
            }
            try commitOffsets(commit)
        }
    }

    private func commitOffsets(_ commit: [TopicPartition: Int64]) throws {
        guard !commit.isEmpty else { return }
        do {
            try retrying("commit offsets", component: "kafka") { try consumer.commit(commit) }
        } catch let e as KafkaError where e.isRebalance {
            // The group is rebalancing: this commit is refused, the next one (or the revoke) makes it.
            logger.info("commit deferred during a rebalance", metadata: ["error": "\(e)"])
            return
        }
        for (tp, offset) in commit { table[tp]?.committedOffset = offset }
        telemetry.committed()
    }

    /// Runs `body` until it succeeds, retrying its retriable failures with `Backoff` (reporting
    /// while it waits) until a stop gives up (forced, or past the shutdown timeout).
    func retrying(_ what: String, component: String, _ body: () throws -> Void) throws {
        var backoff = Backoff()
        while true {
            do {
                try body()
                if telemetry.retrying == what { telemetry.retrying = nil }
                return
            } catch let e as any TesseraError where e.isRetriable {
                let delay = backoff.next()
                logger.warning("cannot \(what), retrying in \(delay.seconds) s: \(e)", metadata: ["code": "\(e.code)"])
                telemetry.retrying = what
                telemetry.failed(component)
                if let reason = stop.giveUpReason {
                    throw EngineError(.stopped, "stopped while trying to \(what): \(reason)",
                                      remedy: "Nothing is lost: the next run resumes from the last checkpoint")
                }
                let until = ContinuousClock.now + delay
                while ContinuousClock.now < until && !stop.mustGiveUp {
                    telemetry.report()
                    Thread.sleep(forTimeInterval: min(0.25, (until - ContinuousClock.now).seconds))
                }
            }
        }
    }
}
