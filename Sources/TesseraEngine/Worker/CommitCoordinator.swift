import Foundation
import Logging
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline

/// The checkpoint-then-commit protocol: offsets are committed only behind durable output.
///
/// `makeDurable` hands the offline files to the storage thread; on a checkpoint round it first
/// flushes Redis and the dead letters here and now, then queues the partitions' checkpoints
/// followed by a mark. When the mark comes out (`checkStorage` between polls, or
/// `awaitStorage`), everything before it is durable and the offsets noted with the round are
/// committed — for partitions still owned by the same entry that noted them (a partition that
/// changed hands is its new owner's to commit). Retriable failures are retried with backoff; meanwhile the worker does
/// not poll, so nothing buffers without bound.
final class CommitCoordinator {
    private let online: OnlineWriter
    private let offline: OfflineLog
    private let deadLetters: DeadLetterSink
    private let storage: DurableWriter
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

    /// Checkpoint rounds queued on the storage thread, by mark: when the round began, and the
    /// offsets to commit (with the entry they belong to) once it is durable.
    private var rounds: [Int: (started: ContinuousClock.Instant, commit: [TopicPartition: (Int64, PartitionTable.Entry)])] = [:]
    private var nextMark = 0
    /// The storage thread's failing write last reported.
    private var trouble: (task: String, error: String)?

    init(online: OnlineWriter, offline: OfflineLog, deadLetters: DeadLetterSink, storage: DurableWriter, checkpoints: CheckpointStore?,
         consumer: KafkaConsumer, table: PartitionTable, telemetry: Telemetry, logger: Logger, maxPendingBytes: Int) {
        self.online = online
        self.offline = offline
        self.deadLetters = deadLetters
        self.storage = storage
        self.checkpoints = checkpoints
        self.consumer = consumer
        self.table = table
        self.telemetry = telemetry
        self.logger = logger
        self.maxPendingBytes = maxPendingBytes
    }

    /// Hands the offline rows so far to the storage thread. With `checkpoint`, first makes every
    /// emission so far durable in Redis and the dead letters, then checkpoints the partitions
    /// (all, or `only` these numbers) and commits their offsets behind the checkpoints.
    func makeDurable(partitions only: Set<Int32>?, checkpoint: Bool, wait: Bool) throws {
        if checkpoint {
            // Only a commit needs the online store and the dead letters caught up: a roll hands
            // its files to the storage thread without waiting for Redis.
            try flushOnline()
            sampler?.sample()
            try retrying("write dead letters", component: "dead_letters") {
                do { try deadLetters.flush() } catch let e as any TesseraError { throw e } catch { throw StorageError("\(error)") }
            }
        }
        if checkpoint && !rounds.isEmpty {
            // One checkpoint round at a time: the state is not copied again while the last copy
            // still waits to be written.
            try awaitStorage()
        }
        var jobs = offline.detach(partitions: only).map { DurableWriter.Job.offline($0) }
        if checkpoint {
            var commit: [TopicPartition: (Int64, PartitionTable.Entry)] = [:]
            for tp in table.partitions where only?.contains(tp.partition) ?? true {
                guard let e = table[tp], e.pipeline.nextOffset >= 0 else { continue }
                if checkpoints != nil {
                    let started = ContinuousClock.now
                    jobs.append(.checkpoint(tp, e.pipeline.snapshot(nextSequences: offline.nextSequences(partition: tp.partition))))
                    telemetry.paused(forCheckpoint: .now - started)
                }
                if e.pipeline.nextOffset > e.committedOffset { commit[tp] = (e.pipeline.nextOffset, e) }
            }
            rounds[nextMark] = (.now, commit)
            jobs.append(.mark(nextMark))
            nextMark += 1
        }
        storage.enqueue(jobs)
        if wait || storage.pendingBytes > maxPendingBytes {
            // Waiting, or the disk is slower than the stream: stop consuming until it catches up.
            try awaitStorage()
        }
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
    /// consuming (waiting, reporting) while one of its writes fails.
    func checkStorage() throws {
        try finishRounds()
        if storage.currentTrouble != nil { try awaitStorage() }
    }

    /// Waits until everything handed to the storage thread is durable, reporting meanwhile (and
    /// any write it is retrying); then commits behind the finished rounds.
    func awaitStorage() throws {
        while !storage.waitUntilIdle(timeout: .milliseconds(100)) {
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
        try finishRounds()
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
