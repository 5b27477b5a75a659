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
/// A partition's image goes into a buffer readied beforehand (`prepare`: its pages faulted in
/// here, before the partition is held), so an image runs at memory speed. Buffers are not kept:
/// an image's memory is freed once the storage thread has written it and let go of it, and the
/// taker is busy until then, so a round readies and holds one partition at a time and the worker
/// carries at most one image besides its state.
final class SnapshotTaker: @unchecked Sendable {  // fields below `condition` are used under it, `buffers` and `sizes` by the thread only
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
        /// Tells the taker that the image is gone.
        fileprivate var released: (@Sendable () -> Void)?

        init(partition: TopicPartition, bytes: Int) {
            self.partition = partition
            self.bytes = bytes
            started = .now
        }

        deinit { released?() }

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
        /// Readies a buffer with room for a state of `bytes` and faults in the pages its image is
        /// expected to take, before the partition is held back: faulting them in during the
        /// image would hold the partition for it.
        case prepare(TopicPartition, bytes: Int)
        case take(TopicPartition, Copy, Pending)
        case forget(TopicPartition)
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var finished: [Pending] = []
    private var busy = false
    private var stopping = false
    /// Images taken and not yet let go of.
    private var live = 0
    /// Buffers readied for the next image of their partition (used by the thread only).
    private var buffers: [TopicPartition: [UInt8]] = [:]
    /// The size of each partition's last image (used by the thread only).
    private var sizes: [TopicPartition: Int] = [:]

    init() {
        let thread = Thread { self.loop() }  // it keeps the taker alive until `stop()`
        thread.name = "tessera-snapshot"
        thread.start()
    }

    /// Readies a buffer for the next image of a partition whose state holds about `bytes`.
    func prepare(_ tp: TopicPartition, bytes: Int) {
        enqueue([.prepare(tp, bytes: bytes)])
    }

    /// Queues the image of `state`, a copy of a partition's live state.
    func take(_ tp: TopicPartition, state: PartitionAggregator) -> Pending {
        let pending = Pending(partition: tp, bytes: state.usedBytes)
        pending.released = { [weak self] in self?.imageReleased() }
        condition.withLock { live += 1 }
        enqueue([.take(tp, Copy(state), pending)])
        return pending
    }

    private func imageReleased() {
        condition.withLock {
            live -= 1
            condition.broadcast()
        }
    }

    /// Forgets partitions that left (their readied buffers are freed).
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

    /// Whether a buffer is being readied, or an image taken or not yet let go of.
    var isBusy: Bool { condition.withLock { busy || !queue.isEmpty || live > 0 } }

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
                buffers[tp] = Self.prefaulted(room: bytes, expected: sizes[tp])
            case .take(let tp, let copy, let pending):
                var buffer = buffers.removeValue(forKey: tp) ?? []
                let image = copy.state!.image(reusing: &buffer)
                sizes[tp] = image.bytes.count
                // Let go of the copy before saying the image is taken: the worker finds its
                // state unshared once it hears of it.
                copy.state = nil
                pending.fulfil(image)
                done = pending
            case .forget(let tp):
                buffers[tp] = nil
                sizes[tp] = nil
            }
            condition.withLock {
                busy = false
                if let done { finished.append(done) }
                condition.broadcast()
            }
        }
    }

    /// A buffer with room for the image of a state of `room` bytes (a quarter more, as
    /// `PartitionAggregator.image(reusing:)` asks, so that it never grows during an image), whose
    /// first bytes are written once: as many as the partition's last image and a quarter more
    /// (the state grows), or the whole room before its first image. The room beyond costs address
    /// space only.
    static func prefaulted(room: Int, expected last: Int?) -> [UInt8] {
        let capacity = room + room / 4
        let touched = min(capacity, last.map { $0 + $0 / 4 } ?? room)
        return [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            buffer.baseAddress.map { _ = memset($0, 0, touched) }
            count = 0
        }
    }
}
