import Foundation
import TesseraCore
import TesseraKafka
import TesseraLog

/// Writes the states of checkpoints off the worker's loop.
///
/// The worker hands over a *copy* of a partition's state. The copy shares its memory with the
/// live state (the slabs are copy-on-write, TesseraCore/State/Slab.swift), so handing it over
/// costs microseconds, not a copy of the state. The worker then holds the partition's records
/// back (`KafkaConsumer.hold`) while this thread streams the copy into the checkpoint's temporary
/// file (`CheckpointStore.write`: straight from the state's memory through direct I/O, sealed on
/// the way, fsynced) and lets go of it: the live state is unshared again by the time the worker
/// writes it, and no byte of it was copied on the loop, nor into an image in memory. Should the
/// worker write the partition before that (a revoke, a stop, time passing on an idle partition),
/// the write copies the shared slabs first: slower, never wrong. The storage thread moves the
/// file into place once the partition's offline files before it are durable (`DurableWriter`).
///
/// A write that fails (disk full) keeps the copy, for the storage thread to write again with the
/// retries every write gets. The taker is busy until the storage thread lets go of a checkpoint,
/// so a round holds one partition, and keeps at most one such copy, at a time.
final class SnapshotTaker: @unchecked Sendable {  // fields below `condition` are used under it
    /// A partition's checkpoint, once its state is written.
    final class Pending: @unchecked Sendable {  // `outcome` is set once, under `condition`; `placed` and `reported` by the storage thread only
        enum Outcome {
            /// In its temporary file, fsynced.
            case written(CheckpointStore.Written)
            /// Not written (why), with the copy of the state to write again.
            case failed(String, PartitionAggregator)
        }

        let partition: TopicPartition
        let position: CheckpointStore.Position
        let started: ContinuousClock.Instant
        private let condition = NSCondition()
        private var outcome: Outcome?
        /// How long the write took (the partition was held back meanwhile).
        private(set) var took: Duration?
        /// Set once the file is in place; a checkpoint dropped before (its partition left, the
        /// worker stopped) removes its temporary file.
        var placed = false
        /// Set once the storage thread has reported the taker's failure.
        var reported = false
        /// Tells the taker that the checkpoint is gone.
        fileprivate var released: (@Sendable () -> Void)?

        init(partition: TopicPartition, position: CheckpointStore.Position) {
            self.partition = partition
            self.position = position
            started = .now
        }

        deinit {
            if !placed, case .written(let written)? = outcome { unlink(written.temporary) }
            released?()
        }

        fileprivate func fulfil(_ outcome: Outcome) {
            condition.withLock {
                self.outcome = outcome
                took = .now - started
                condition.broadcast()
            }
        }

        /// The outcome, waiting for it if the state is still being written.
        func wait() -> Outcome {
            condition.withLock {
                while outcome == nil { condition.wait() }
                return outcome!
            }
        }
    }

    /// The copy of a state being written, let go of as soon as it is.
    private final class Copy: @unchecked Sendable {  // used by the snapshot thread once queued
        var state: PartitionAggregator?
        init(_ state: PartitionAggregator) { self.state = state }
    }

    private struct Job {
        let store: CheckpointStore
        let copy: Copy
        let pending: Pending
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var finished: [Pending] = []
    private var busy = false
    private var stopping = false
    /// Checkpoints taken and not yet let go of.
    private var live = 0

    init() {
        startThread(named: "tessera-snap") { self.loop() }  // it keeps the taker alive until `stop()`
    }

    /// Queues the checkpoint of a partition at `position` whose state is `state`, a copy of the
    /// live state, into `store`.
    func take(_ tp: TopicPartition, state: PartitionAggregator, position: CheckpointStore.Position, into store: CheckpointStore) -> Pending {
        let pending = Pending(partition: tp, position: position)
        pending.released = { [weak self] in self?.checkpointReleased() }
        condition.withLock {
            live += 1
            queue.append(Job(store: store, copy: Copy(state), pending: pending))
            condition.broadcast()
        }
        return pending
    }

    private func checkpointReleased() {
        condition.withLock {
            live -= 1
            condition.broadcast()
        }
    }

    /// The checkpoints whose states were written (or failed to be) since the last call: their
    /// partitions' states are no longer shared.
    func takeFinished() -> [Pending] {
        condition.withLock {
            defer { finished.removeAll() }
            return finished
        }
    }

    /// Whether a state is being written, or a checkpoint not yet let go of.
    var isBusy: Bool { condition.withLock { busy || !queue.isEmpty || live > 0 } }

    /// Ends the thread once the checkpoints queued are written.
    func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                return
            }
            let job = queue.removeFirst()
            busy = true
            condition.unlock()

            let outcome = Self.write(job)
            // Let go of the copy before saying the state is written: the worker finds its state
            // unshared once it hears of it (unless the write failed and the copy is kept).
            job.copy.state = nil
            job.pending.fulfil(outcome)
            condition.withLock {
                busy = false
                finished.append(job.pending)
                condition.broadcast()
            }
        }
    }

    /// Writes a job's state (no reference to it outlives this call, but for a failure's).
    private static func write(_ job: Job) -> Pending.Outcome {
        let tp = job.pending.partition, state = job.copy.state!
        do {
            return .written(try job.store.write(topic: tp.topic, partition: tp.partition, position: job.pending.position, state: state))
        } catch {
            return .failed("\(error)", state)
        }
    }
}
