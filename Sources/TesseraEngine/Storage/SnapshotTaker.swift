import Foundation
import TesseraCore
import TesseraKafka

/// Takes the state images of checkpoints off the worker's loop.
///
/// The worker hands over a *copy* of a partition's state. The copy shares its memory with the
/// live state (the slabs are copy-on-write, TesseraCore/State/Slab.swift), so handing it over
/// costs microseconds, not a copy of the state. The worker then holds the partition's records
/// back (`KafkaConsumer.hold`) while this thread serializes the copy into the partition's image
/// buffer and lets go of it: the live state is unshared again by the time the worker writes it,
/// and no byte of it was copied on the loop. Should the worker write the partition before that
/// (a revoke, a stop, time passing on an idle partition), the write copies the shared slabs
/// first: slower, never wrong. The image is what the storage thread later seals and writes.
///
/// Each partition's image goes into the buffer of its last one. A round first readies the
/// buffers (`prepare`: a buffer too small for the state is replaced by a larger one whose pages
/// are faulted in here, before any partition is held), so an image runs at memory speed.
final class SnapshotTaker: @unchecked Sendable {  // fields below `condition` are used under it, `buffers` by the thread only
    /// A partition's image, once taken.
    final class Pending: @unchecked Sendable {  // `image` is set once, under `condition`
        let partition: TopicPartition
        /// Roughly how many bytes the image will hold (for the storage queue's back-pressure).
        let bytes: Int
        let started: ContinuousClock.Instant
        private let condition = NSCondition()
        private var image: PartitionAggregator.Image?
        /// How long the image took.
        private(set) var took: Duration?

        init(partition: TopicPartition, bytes: Int) {
            self.partition = partition
            self.bytes = bytes
            started = .now
        }

        fileprivate func fulfil(_ image: PartitionAggregator.Image) {
            condition.withLock {
                self.image = image
                took = .now - started
                condition.broadcast()
            }
        }

        /// The image, waiting for it if it is still being taken.
        func wait() -> PartitionAggregator.Image {
            condition.withLock {
                while image == nil { condition.wait() }
                return image!
            }
        }
    }

    /// The copy of a state being imaged, let go of as soon as it is.
    private final class Copy: @unchecked Sendable {  // used by the snapshot thread once queued
        var state: PartitionAggregator?
        init(_ state: PartitionAggregator) { self.state = state }
    }

    private enum Job {
        /// Makes the partition's buffer hold `bytes` and faults its pages in, before the partition
        /// is held back: growing it during an image would hold the partition for page faults.
        case prepare(TopicPartition, bytes: Int)
        case take(TopicPartition, Copy, Pending)
        case forget(TopicPartition)
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var finished: [Pending] = []
    private var busy = false
    private var stopping = false
    /// Each partition's image buffer, reused from one checkpoint to the next (used by the thread only).
    private var buffers: [TopicPartition: [UInt8]] = [:]

    init() {
        let thread = Thread { self.loop() }  // it keeps the taker alive until `stop()`
        thread.name = "tessera-snapshot"
        thread.start()
    }

    /// Readies the buffers of a round's partitions for states of about these sizes.
    func prepare(_ sizes: [(TopicPartition, Int)]) {
        enqueue(sizes.map { .prepare($0.0, bytes: $0.1) })
    }

    /// Queues the image of `state`, a copy of a partition's live state.
    func take(_ tp: TopicPartition, state: PartitionAggregator) -> Pending {
        let pending = Pending(partition: tp, bytes: state.memory)
        enqueue([.take(tp, Copy(state), pending)])
        return pending
    }

    /// Frees the buffers of partitions that left.
    func forget(_ tps: [TopicPartition]) { enqueue(tps.map { .forget($0) }) }

    private func enqueue(_ jobs: [Job]) {
        guard !jobs.isEmpty else { return }
        condition.withLock {
            queue += jobs
            condition.broadcast()
        }
    }

    /// The images taken since the last call (their partitions' states are no longer shared).
    func takeFinished() -> [Pending] {
        condition.withLock {
            defer { finished.removeAll() }
            return finished
        }
    }

    /// Whether an image is being taken or waits to be.
    var isBusy: Bool { condition.withLock { busy || !queue.isEmpty } }

    /// Ends the thread once the images queued are taken.
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

            var done: Pending?
            switch job {
            case .prepare(let tp, let bytes):
                buffers[tp] = Self.prefaulted(buffers.removeValue(forKey: tp) ?? [], bytes: bytes)
            case .take(let tp, let copy, let pending):
                var buffer = buffers.removeValue(forKey: tp) ?? []
                let image = copy.state!.image(reusing: &buffer)
                buffers[tp] = buffer
                // Let go of the copy before saying the image is taken: the worker finds its
                // state unshared once it hears of it.
                copy.state = nil
                pending.fulfil(image)
                done = pending
            case .forget(let tp):
                buffers[tp] = nil
            }
            condition.withLock {
                busy = false
                if let done { finished.append(done) }
                condition.broadcast()
            }
        }
    }

    /// `buffer` if it holds `bytes` and a quarter more, else a new buffer with room for half as
    /// much again whose first `bytes` are written once (faulted in, so that an image runs at
    /// memory speed; the room beyond costs address space only until the state grows into it).
    static func prefaulted(_ buffer: [UInt8], bytes: Int) -> [UInt8] {
        guard buffer.capacity < bytes + bytes / 4 else { return buffer }
        return [UInt8](unsafeUninitializedCapacity: bytes + bytes / 2) { room, count in
            room.baseAddress.map { _ = memset($0, 0, bytes) }
            count = 0
        }
    }
}
