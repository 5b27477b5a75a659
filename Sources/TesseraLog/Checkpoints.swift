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

    /// Writes a partition's checkpoint in place of the last one.
    public func save(topic: String, partition: Int32, position: Position, state: PartitionAggregator) throws {
        let written = try write(topic: topic, partition: partition, position: position, state: state)
        try moveIntoPlace(written)
    }

    /// A checkpoint written to its temporary file and fsynced, not yet in place.
    public struct Written: Sendable {
        public let temporary: String
        public let path: String
    }

    /// Writes a partition's checkpoint to a temporary file beside its place, fsynced, streaming
    /// the state from its memory (no image of it is built) and sealing it on the way; the
    /// header's end, which holds the state's seal and length, is completed last. `moveIntoPlace`
    /// puts it where `load` finds it. On failure the temporary file is removed.
    public func write(topic: String, partition: Int32, position: Position, state: PartitionAggregator) throws -> Written {
        let dir = "\(directory)/\(topic)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = path(topic: topic, partition: partition)
        let temporary = AtomicFile.temporaryPath(for: path)
        var w = ByteWriter()
        w.write(Self.magic)
        w.write(Self.version)
        w.write(position.nextOffset)
        w.write(position.lastCreated)
        w.write(UInt64(position.nextSequences.count))
        for (view, sequence) in position.nextSequences.sorted(by: { $0.key < $1.key }) {
            w.write(view)
            w.write(sequence)
        }
        let header = w.bytes
        do {
            let file = try StreamedFile(creating: temporary)
            header.withUnsafeBytes { file.take($0) }
            // The header seal and `ByteWriter.write(array:)`'s framing of the state and its seal,
            // both known once the state is written: patched in then.
            let placeholder = [UInt8](repeating: 0, count: 4 + 8)
            placeholder.withUnsafeBytes { file.take($0) }
            let sealing = SealingSink(file)
            let length = state.write(imageTo: sealing)
            let seal = Seal.trailer(crc: sealing.crc)
            seal.withUnsafeBytes { file.take($0) }
            var patch = ByteWriter()
            patch.write(Self.headerSeal(header, stateSeal: seal))
            patch.write(UInt64(length + seal.count))
            file.patch(at: header.count, patch.bytes)
            try file.close()
        } catch {
            unlink(temporary)
            throw error
        }
        return Written(temporary: temporary, path: path)
    }

    /// Puts a checkpoint written by `write` in place of the last one (rename, directory fsync).
    public func moveIntoPlace(_ written: Written) throws {
        try AtomicFile.moveIntoPlace(written.temporary, written.path)
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

/// Passes bytes on to a file, computing their CRC-32C on the way (a few hundred KiB at a time,
/// so that the copy reads what the checksum has just brought into the cache).
private final class SealingSink: ByteSink {
    let file: StreamedFile
    private(set) var crc: UInt32 = 0
    static let piece = 256 << 10

    init(_ file: StreamedFile) { self.file = file }

    func take(_ bytes: UnsafeRawBufferPointer) {
        var start = 0
        while start < bytes.count {
            let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<min(bytes.count, start + Self.piece)])
            crc = Seal.crc32c(piece, continuing: crc)
            file.take(piece)
            start += piece.count
        }
    }
}
