import Foundation
import TesseraCore
import TesseraOffline

/// Partition checkpoints, kept where every worker of the group can read them (a shared
/// directory): the aggregation state, the offset of the next input record, the last created
/// timestamp given out, and where each view's offline log continues. Each is replaced
/// atomically (`AtomicFile`), so a checkpoint is the old one or the whole new one.
///
///     STATE_DIR/GROUP/TOPIC/PARTITION.state
///
///     "tessera-checkpoint" · version 3 · next offset · last created · views: name → next sequence
///     · header seal · state length · state (`PartitionAggregator.serialized()`: the image and its seal)
///
/// The header seal is the CRC-32C of every header byte before it and of the state's seal, so a
/// checkpoint is covered end to end: an altered offset, created time or sequence is refused like
/// an altered state, and so is a header spliced onto another checkpoint's state. (Version 2,
/// without the header seal, is still read.)
public struct CheckpointStore: Sendable {
    public let directory: String

    /// The store of one consumer group.
    public init(stateDirectory: String, group: String) {
        directory = "\(stateDirectory)/\(group)"
    }

    /// Where each view's offline log of a partition stands in the group's checkpoint: files with a
    /// smaller sequence number survive every recovery, later ones may be replaced. Empty when the
    /// partition has no checkpoint.
    public static func checkpointedSequences(stateDirectory: String, group: String, topic: String,
                                             partition: Int32) throws -> [String: Int64] {
        try CheckpointStore(stateDirectory: stateDirectory, group: group).load(topic: topic, partition: partition)?.nextSequences ?? [:]
    }

    /// Where a partition's input and output stand at a checkpoint.
    public struct Position: Sendable {
        public var nextOffset: Int64
        public var lastCreated: Micros
        /// The sequence number of each view's next offline file for this partition.
        public var nextSequences: [String: Int64]

        public init(nextOffset: Int64, lastCreated: Micros, nextSequences: [String: Int64]) {
            self.nextOffset = nextOffset
            self.lastCreated = lastCreated
            self.nextSequences = nextSequences
        }
    }

    /// A checkpoint as it is saved: the position and the state image, sealed where it is written.
    public struct Snapshot: Sendable {
        public var position: Position
        public var state: PartitionAggregator.Image

        public init(position: Position, state: PartitionAggregator.Image) {
            self.position = position
            self.state = state
        }

        /// Roughly what it holds in memory (for back-pressure).
        public var bytes: Int { state.bytes.count }
    }

    /// A checkpoint as it is loaded: the position and the sealed state, for
    /// `PartitionAggregator(restoring:)` (which verifies the seal).
    public struct Saved: Sendable {
        public var position: Position
        public var state: [UInt8]
        public var nextOffset: Int64 { position.nextOffset }
        public var nextSequences: [String: Int64] { position.nextSequences }
    }

    static let magic = "tessera-checkpoint"
    static let version: UInt32 = 3

    public func path(topic: String, partition: Int32) -> String { "\(directory)/\(topic)/\(partition).state" }

    /// Whether a partition has a checkpoint (read or not).
    public func exists(topic: String, partition: Int32) -> Bool {
        FileManager.default.fileExists(atPath: path(topic: topic, partition: partition))
    }

    /// Writes a partition's checkpoint in place of the last one (computing the state's seal here).
    public func save(topic: String, partition: Int32, _ snapshot: Snapshot) throws {
        let dir = "\(directory)/\(topic)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var w = ByteWriter()
        w.write(Self.magic)
        w.write(Self.version)
        w.write(snapshot.position.nextOffset)
        w.write(snapshot.position.lastCreated)
        w.write(UInt64(snapshot.position.nextSequences.count))
        for (view, sequence) in snapshot.position.nextSequences.sorted(by: { $0.key < $1.key }) {
            w.write(view)
            w.write(sequence)
        }
        let seal = snapshot.state.seal()
        w.write(Self.headerSeal(w.bytes, stateSeal: seal))
        // `ByteWriter.write(array:)`'s framing, with the (possibly large) state written from where it lies.
        w.write(UInt64(snapshot.state.bytes.count + seal.count))
        let header = w.bytes
        try AtomicFile.replace(path(topic: topic, partition: partition)) { temporary in
            try header.withUnsafeBytes { h in
                try snapshot.state.bytes.withUnsafeBytes { state in
                    try seal.withUnsafeBytes { try OutputFile.write(temporary, parts: [h, state, $0]) }
                }
            }
        }
    }

    /// A partition's checkpoint, or nil when it has none.
    public func load(topic: String, partition: Int32) throws -> Saved? {
        let path = path(topic: topic, partition: partition)
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let bytes = Array(data)
        var r = ByteReader(bytes)
        try r.expect(Self.magic)
        let version = try r.read(UInt32.self)
        guard version == Self.version || version == 2 else {
            throw StateFormatError(description: "unknown checkpoint version \(version) (this build reads 2 and 3)")
        }
        let next = try r.read(Int64.self)
        let created = try r.read(Int64.self)
        var sequences: [String: Int64] = [:]
        for _ in 0..<(try r.count(limit: 1 << 16)) {
            let view = try r.read(String.self)
            sequences[view] = try r.read(Int64.self)
        }
        let headerEnd = r.position
        let sealed = version == 2 ? nil : try r.read(UInt32.self)
        let state: [UInt8] = try r.readArray()
        guard r.isAtEnd else { throw StateFormatError(description: "the checkpoint has trailing bytes") }
        if let sealed {
            guard state.count >= 8, sealed == Self.headerSeal(bytes[..<headerEnd], stateSeal: state[(state.count - 8)...]) else {
                throw StateFormatError(description: """
                    the checkpoint's header checksum does not match: its offsets or sequences were altered, or it is torn. \
                    Restore the file from a backup, or delete it and restart with --reset-state to rebuild the partition from the topic
                    """)
            }
        }
        return Saved(position: Position(nextOffset: next, lastCreated: created, nextSequences: sequences), state: state)
    }

    /// CRC-32C of the header bytes and then the state's seal.
    static func headerSeal<H: Collection<UInt8>, S: Collection<UInt8>>(_ header: H, stateSeal: S) -> UInt32 {
        let crc = Array(header).withUnsafeBytes { Seal.crc32c($0) }
        return Array(stateSeal).withUnsafeBytes { Seal.crc32c($0, continuing: crc) }
    }
}
