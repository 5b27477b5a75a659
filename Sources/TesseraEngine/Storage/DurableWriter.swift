import Foundation
import TesseraCore
import TesseraKafka
import TesseraLog
import TesseraOnline

/// The worker's storage thread: offline files and checkpoints are encoded, compressed, written
/// and fsynced here, in the order the worker hands them over, while the worker goes on
/// consuming. Order is the durability contract: a partition's offline files are queued before
/// the checkpoint that records the sequences after them, and a checkpoint round is followed by
/// a mark; when the mark comes out, everything queued before it is durable and the worker
/// commits the offsets it noted with it.
///
/// A failing write (disk full, directory gone) is retried here with backoff, first in the queue,
/// so nothing is reordered or lost; the worker sees `trouble` and stops consuming until it
/// clears (docs/design.md, "Delivery and recovery").
///
/// `@unchecked Sendable`: `offline` and `checkpoints` are used by the storage thread only through
/// their thread-safe write calls; every field below `condition` is read and written under it.
final class DurableWriter: @unchecked Sendable {
    enum Job: Sendable {
        case offline(OfflineLog.PendingFile)
        /// A partition's checkpoint, moved into place once `SnapshotTaker` has written it.
        case checkpoint(SnapshotTaker.Pending)
        /// Waits until Redis holds every row emitted before the checkpoints queued behind it: a
        /// checkpoint must not be written ahead of the online rows it counts as emitted, and
        /// the worker goes on consuming meanwhile.
        case online(OnlineWriter.Mark)
        /// Everything queued before it is durable once it is taken.
        case mark(Int)

        var bytes: Int {
            switch self {
            case .offline(let file): file.bytes
            case .checkpoint, .online, .mark: 0
            }
        }

        /// What the worker reports while it fails, and the component its errors count under.
        var what: (task: String, component: String) {
            switch self {
            case .offline: ("write the offline log", "offline")
            case .checkpoint(let pending): ("write the checkpoint of \(pending.partition)", "checkpoint")
            case .online: ("write the online rows before a checkpoint", "redis")
            case .mark: ("", "")
            }
        }
    }

    private let offline: OfflineLog
    private let checkpoints: CheckpointStore?
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var head = 0
    private var busy = false
    private var queuedBytes = 0
    private var finishedMarks: [Int] = []
    private var trouble: (task: String, component: String, error: String)?
    private var failures: [String: Int] = [:]
    private var stopping = false

    init(offline: OfflineLog, checkpoints: CheckpointStore?) {
        self.offline = offline
        self.checkpoints = checkpoints
        startThread(named: "tessera-storage") { self.loop() }  // it keeps the writer alive until `stop()`
    }

    func enqueue(_ jobs: [Job]) {
        guard !jobs.isEmpty else { return }
        condition.withLock {
            queue.append(contentsOf: jobs)
            queuedBytes += jobs.reduce(0) { $0 + $1.bytes }
            condition.broadcast()
        }
    }

    /// Bytes waiting to be written (for back-pressure).
    var pendingBytes: Int { condition.withLock { queuedBytes } }

    /// Whether nothing is queued or being written.
    var isIdle: Bool { condition.withLock { head == queue.count && !busy } }

    /// The write that is failing now, if any: what the worker reports, and the error.
    var currentTrouble: (task: String, component: String, error: String)? { condition.withLock { trouble } }

    /// Failed attempts per component since the start (for `tessera_errors_total`).
    var failureCounts: [String: Int] { condition.withLock { failures } }

    /// Takes the marks that came out since the last call.
    func takeFinishedMarks() -> [Int] {
        condition.withLock {
            defer { finishedMarks.removeAll() }
            return finishedMarks
        }
    }

    /// Waits up to `timeout` for the queue to empty; true when it is empty.
    func waitUntilIdle(timeout: Duration) -> Bool {
        let deadline = Date().addingTimeInterval(timeout.seconds)
        return condition.withLock {
            while head < queue.count || busy {
                if !condition.wait(until: deadline) { break }
            }
            return head == queue.count && !busy
        }
    }

    /// Drops queued (not yet started) jobs of these partitions, and waits for a write in progress
    /// to end, so that nothing of theirs is written after this returns.
    func discard(partitions: Set<Int32>) {
        condition.withLock {
            let kept = queue[head...].filter { job in
                switch job {
                case .offline(let file): !partitions.contains(file.key.partition)
                case .checkpoint(let pending): !partitions.contains(pending.partition.partition)
                case .online, .mark: true
                }
            }
            queue = Array(kept)
            head = 0
            queuedBytes = queue.reduce(0) { $0 + $1.bytes }
            while busy { condition.wait() }
        }
    }

    /// Stops the thread after the write in progress; what is still queued is dropped (the
    /// worker stops without committing it, and the next run replays from the last checkpoint).
    func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
            while busy { condition.wait() }
        }
    }

    /// Moves a checkpoint the snapshot thread wrote into place; one it failed to write is
    /// reported (as a failed attempt) and then written here from the copy of the state it kept.
    private func place(_ pending: SnapshotTaker.Pending) throws {
        guard let checkpoints else { return }
        switch pending.wait() {
        case .written(let written):
            try checkpoints.moveIntoPlace(written)
            pending.placed = true
        case .failed(let reason, let state):
            if !pending.reported {
                pending.reported = true
                throw StorageError(reason)
            }
            let tp = pending.partition
            try checkpoints.save(topic: tp.topic, partition: tp.partition, position: pending.position, state: state)
        }
    }

    private func loop() {
        // Below the worker, the Redis flusher, Redis and the broker in the scheduler's eyes: the
        // Parquet encoding of a roll and the checkpoint write then fill idle CPU instead of
        // preempting the loop that freshness depends on (the queue's back-pressure bounds the
        // lag this may cause). On Linux a nice value belongs to a thread: this one, "0".
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
        var backoff = Backoff()
        while true {
            condition.lock()
            while head == queue.count && !stopping { condition.wait() }
            if stopping {
                queue.removeAll()
                head = 0
                queuedBytes = 0
                condition.broadcast()
                condition.unlock()
                return
            }
            var job = queue[head]
            busy = true
            condition.unlock()

            var finished: Int?
            var failure: String?
            var abandoned = false
            do {
                switch job {
                case .offline(let file): try offline.write(file)
                case .checkpoint(let pending): try place(pending)
                case .online(let mark):
                    while try !mark.reached(within: 0.1) {
                        if condition.withLock({ stopping }) {
                            abandoned = true
                            break
                        }
                    }
                case .mark(let id): finished = id
                }
            } catch {
                failure = "\(error)"
            }
            if abandoned {
                // Stopping: the loop's next turn drops the queue.
                condition.withLock {
                    busy = false
                    condition.broadcast()
                }
                continue
            }

            condition.lock()
            busy = false
            if let failure {
                let what = job.what
                trouble = (what.task, what.component, failure)
                failures[what.component, default: 0] += 1
                condition.broadcast()
                // Retry the same job after a pause (cut short by a stop).
                _ = condition.wait(until: Date().addingTimeInterval(backoff.next().seconds))
                condition.unlock()
                continue
            }
            backoff.reset()
            trouble = nil
            // Let go of what the job held now, not when the queue is next compacted: the snapshot
            // thread takes the next checkpoint once the last one is let go of.
            queue[head] = .mark(-1)
            head += 1
            queuedBytes -= job.bytes
            if head == queue.count || head > 1024 {
                queue.removeFirst(head)
                head = 0
            }
            if let finished { finishedMarks.append(finished) }
            condition.broadcast()
            condition.unlock()
            if case .offline(var file) = job {
                // Let go of the job's reference, so that the piece's columns are unique and keep
                // their memory when emptied.
                job = .mark(-1)
                offline.recycle(&file)
            }
        }
    }
}
