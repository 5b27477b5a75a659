import Foundation
import Synchronization
import TesseraCore
import TesseraOffline
import TesseraTopology

/// The offline log: every closed emission of a view, per partition, in stream-time order,
/// rolled into Parquet files. Each file is written through `AtomicFile`, so it is either whole
/// or absent (docs/design.md, "The offline log").
///
///     DIR/VIEW/partition=P/SEQUENCE-FIRST_OFFSET-LAST_OFFSET.parquet
///
/// The sequence numbers a partition's files in the order they were written. A checkpoint
/// records the next sequence; recovery deletes the files at or after it (written after the
/// checkpoint) and replays, so every row is in the log exactly once.
///
/// Columns: the join keys, the features, `event_timestamp` and `created_timestamp` (UTC µs),
/// and `_offset`, the input offset that closed the row (the record that moved stream time past
/// it, or the next offset when the end of the input did).
public final class OfflineLog: @unchecked Sendable {
    // `buffers` and `sequences` are touched only by the worker thread that owns the log;
    // `write(_:)`, which the storage thread calls, reads nothing but its argument, `directory`,
    // `compression` and the `written` counters (behind their mutex).
    public let directory: String
    let compression: ParquetCompression
    private var buffers: [Key: Buffer] = [:]
    private let views: [String: FeatureView]
    /// The sequence number of the next file of each (view, partition).
    private var sequences: [Key: Int64] = [:]
    /// Rows written per view since the log was opened (for metrics; files are written on the
    /// worker's storage thread).
    private let written = Mutex<[String: Int]>([:])
    /// Columns of row groups already written, emptied, for the next row groups (`recycle`).
    private let spare = Mutex<[[Column]]>([])
    /// How many sets of columns `spare` keeps.
    static let spareSets = 1
    public var rowsWritten: [String: Int] { written.withLock { $0 } }
    public var rowsWrittenTotal: Int { written.withLock { $0.values.reduce(0, +) } }

    package struct Key: Hashable, Sendable {
        package var view: String
        package var partition: Int32
    }

    package struct Buffer: Sendable {
        var columns: [Column]
        var firstOffset: Int64 = -1
        var lastOffset: Int64 = -1
        /// The file these rows go to, once row groups of it have been handed over.
        var file: OpenFile?
        /// Pieces of that file handed over so far.
        var pieces = 0
        var rows: Int { columns.first?.count ?? 0 }
    }

    /// A log file being written row group by row group: each is encoded, compressed and written to
    /// a temporary file as it is handed over (`takeRowGroups`), so the rows of a roll interval do
    /// not wait in memory and a roll does not encode them all at once. The file's end renames the
    /// temporary file into place (the `AtomicFile` protocol); one left behind by a crash or a
    /// revoke is removed by the partition's recovery, and one dropped unfinished removes itself.
    ///
    /// `@unchecked Sendable`: made by the thread that owns the log, then touched only by the one
    /// thread that writes the log's pending files, in their order.
    package final class OpenFile: @unchecked Sendable {
        fileprivate var writer: ParquetFileWriter?
        fileprivate var temporary: String?
        /// Pieces written (a retried piece is not written twice).
        fileprivate var pieces = 0
        fileprivate var rows = 0
        fileprivate var placed = false

        deinit {
            writer = nil
            if !placed, let temporary { unlink(temporary) }
        }

        /// Temporary files this process has started (for unique names).
        fileprivate static let started = Atomic<Int>(0)
    }

    /// Rows per row group: a buffer this full is handed over as one.
    public let rowGroupRows: Int

    public static let offsetColumn = "_offset"

    public init(directory: String, views: [FeatureView], compression: ParquetCompression = .zstd(level: 1),
                rowGroupRows: Int = 1 << 17) throws {
        precondition(rowGroupRows > 0)
        self.directory = directory
        self.compression = compression
        self.rowGroupRows = rowGroupRows
        self.views = Dictionary(uniqueKeysWithValues: views.map { ($0.name, $0) })
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// The Parquet schema of a view's files.
    public static func schema(of view: FeatureView) -> ParquetSchema {
        var fields = view.joinKeys.map { ParquetField(name: $0.name, type: $0.type == .string ? .string : .int64, nullable: false) }
        for f in view.spec.features {
            let type: ParquetType
            switch view.spec.outputType(of: f) {
            case .int64: type = .int64
            case .float64: type = .double
            case .string: type = .string
            case .bool: type = .bool
            }
            fields.append(ParquetField(name: f.name, type: type, nullable: true))
        }
        fields.append(ParquetField(name: "event_timestamp", type: .timestampMicros, nullable: false))
        fields.append(ParquetField(name: "created_timestamp", type: .timestampMicros, nullable: false))
        fields.append(ParquetField(name: offsetColumn, type: .int64, nullable: false))
        return ParquetSchema(fields)
    }

    /// Buffers the first `count` emissions (the closed ones) of one view and partition.
    /// `created` and `offsets` give each row's created timestamp and closing input offset.
    package func append(view: String, partition: Int32, emissions: EmissionBatch, count: Int, created: [Micros], offsets: [Int64]) {
        guard let spec = views[view], count > 0 else { return }
        let key = Key(view: view, partition: partition)
        var buffer = buffers.removeValue(forKey: key) ?? Buffer(columns: freshColumns(OfflineLog.schema(of: spec).fields.map { OfflineLog.valueType($0.type) }))
        var c = 0
        let rows = 0..<count
        for k in emissions.keys { buffer.columns[c].append(contentsOf: k, range: rows); c += 1 }
        for f in emissions.features { buffer.columns[c].append(contentsOf: f, range: rows); c += 1 }
        buffer.columns[c].ints.append(contentsOf: emissions.eventTimes[rows])
        buffer.columns[c].validity.appendSet(count: count)
        buffer.columns[c + 1].ints.append(contentsOf: created[rows])
        buffer.columns[c + 1].validity.appendSet(count: count)
        buffer.columns[c + 2].ints.append(contentsOf: offsets[rows])
        buffer.columns[c + 2].validity.appendSet(count: count)
        if buffer.firstOffset < 0 { buffer.firstOffset = offsets[0] }
        buffer.lastOffset = max(buffer.lastOffset, offsets[rows].max()!)
        buffers[key] = buffer
    }

    public var bufferedRows: Int { buffers.values.reduce(0) { $0 + $1.rows } }

    /// A piece of a (view, partition)'s next file taken out of the log: a row group of it, or its
    /// end (the rows left, maybe none), after which the file is written. The pieces of a file must
    /// be written (`write`) in the order they were taken, before a checkpoint that records the
    /// sequences that follow them.
    package struct PendingFile: Sendable {
        package var key: Key
        var view: FeatureView
        var buffer: Buffer
        var sequence: Int64
        let file: OpenFile
        /// The piece's place in its file.
        let piece: Int
        /// Whether the piece ends the file.
        let ends: Bool
        package var rows: Int { buffer.rows }
        /// Roughly what it holds in memory (for back-pressure).
        package var bytes: Int { buffer.rows * buffer.columns.count * 9 }
    }

    /// Takes out, as row groups of their next file, the (view, partition)s with at least
    /// `rowGroupRows` rows buffered.
    package func takeRowGroups() -> [PendingFile] {
        var pieces: [PendingFile] = []
        for (key, buffer) in buffers where buffer.rows >= rowGroupRows {
            guard let view = views[key.view] else { continue }
            pieces.append(piece(key, view, buffer, ends: false))
        }
        return pieces.sorted { ($0.key.partition, $0.key.view) < ($1.key.partition, $1.key.view) }
    }

    /// Takes every buffered (view, partition) out of the log, optionally only some partitions, as
    /// the end of its file, and numbers the next file.
    package func detach(partitions: Set<Int32>? = nil) -> [PendingFile] {
        var files: [PendingFile] = []
        for (key, buffer) in buffers.sorted(by: { ($0.key.partition, $0.key.view) < ($1.key.partition, $1.key.view) })
        where (buffer.rows > 0 || buffer.file != nil) && (partitions?.contains(key.partition) ?? true) {
            guard let view = views[key.view] else { continue }
            files.append(piece(key, view, buffer, ends: true))
        }
        return files
    }

    /// Empty columns with room for a row group and a batch more, allocated once: grown by
    /// doubling from nothing, each row group's columns would be reallocated a dozen times and end
    /// up to twice their size, in memory the allocator keeps (they are freed on another thread).
    /// Those of a row group already written are reused when their types match.
    private func freshColumns(_ types: [ValueType]) -> [Column] {
        let reused = spare.withLock { sets -> [Column]? in
            guard let i = sets.firstIndex(where: { $0.map(\.type) == types }) else { return nil }
            return sets.remove(at: i)
        }
        if let reused { return reused }
        return types.map {
            var column = Column(type: $0)
            column.reserveCapacity(rowGroupRows + rowGroupRows / 8)
            return column
        }
    }

    /// Takes a buffer's rows out as the next piece of its file.
    private func piece(_ key: Key, _ view: FeatureView, _ buffer: Buffer, ends: Bool) -> PendingFile {
        let file = buffer.file ?? OpenFile()
        let sequence = sequences[key, default: 0]
        let piece = PendingFile(key: key, view: view, buffer: buffer, sequence: sequence, file: file, piece: buffer.pieces, ends: ends)
        if ends {
            sequences[key] = sequence + 1
            buffers[key] = nil
        } else {
            buffers[key] = Buffer(columns: freshColumns(buffer.columns.map(\.type)), firstOffset: buffer.firstOffset,
                                  lastOffset: buffer.lastOffset, file: file, pieces: buffer.pieces + 1)
        }
        return piece
    }

    /// Writes every buffered (view, partition) to its own file here and now, optionally only some
    /// partitions; returns the rows those files hold. A failure is thrown as it happens, and the
    /// rows of the files not written are no longer in the log: the caller gives up (a backfill that
    /// fails is run again; the worker writes through `detach` and its storage thread instead).
    @discardableResult
    package func roll(partitions: Set<Int32>? = nil) throws -> Int {
        try detach(partitions: partitions).reduce(0) { $0 + (try write($1)) }
    }

    /// Drops what is buffered for partitions that are no longer ours (after a failed revoke).
    package func discard(partitions: Set<Int32>) {
        for key in buffers.keys where partitions.contains(key.partition) { buffers[key] = nil }
    }

    public func directory(view: String, partition: Int32) -> String {
        "\(directory)/\(view)/partition=\(partition)"
    }

    /// Writes a piece of a file: a row group of it, and with the file's end, the footer and the
    /// rename into place. Safe on any thread (it touches only the file and the row counters); a
    /// piece that failed may be written again (a failed write leaves the file as it was). Returns
    /// the rows of the file placed (0 for a row group).
    @discardableResult
    package func write(_ piece: PendingFile) throws -> Int {
        let key = piece.key, buffer = piece.buffer, view = piece.view, file = piece.file
        let dir = directory(view: key.view, partition: key.partition)
        if file.pieces == piece.piece {
            if file.writer == nil {
                if file.temporary == nil {
                    let n = OpenFile.started.add(1, ordering: .relaxed).newValue
                    file.temporary = "\(dir)/.\(String(format: "%010lld", piece.sequence))-\(getpid())-\(n).tmp"
                }
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                file.writer = try ParquetFileWriter(
                    path: file.temporary!, schema: OfflineLog.schema(of: view), compression: compression,
                    metadata: [("tessera.view", key.view), ("tessera.partition", String(key.partition)),
                               ("tessera.view_fingerprint", view.spec.fingerprint)])
            }
            try file.writer!.write(rowGroup: buffer.columns)
            file.rows += buffer.rows
            file.pieces += 1
        }
        guard piece.ends, let writer = file.writer, let temporary = file.temporary else { return 0 }
        try writer.close()
        try AtomicFile.moveIntoPlace(temporary, "\(dir)/\(OfflineLog.fileName(sequence: piece.sequence, first: buffer.firstOffset, last: buffer.lastOffset))")
        file.placed = true
        written.withLock { $0[key.view, default: 0] += file.rows }
        return file.rows
    }

    /// Takes the columns of a piece that was written, to be emptied and reused by a later row
    /// group: fresh ones are megabytes each, every page of which would be faulted in again.
    /// Call once the piece is written and nothing else holds it (its columns are then unique, and
    /// emptying them keeps their memory).
    package func recycle(_ piece: inout PendingFile) {
        var columns: [Column] = []
        swap(&columns, &piece.buffer.columns)
        guard !columns.isEmpty, columns[0].count > 0 else { return }
        for i in columns.indices { columns[i].removeAll() }
        spare.withLock { if $0.count < OfflineLog.spareSets { $0.append(columns) } }
    }

    /// `SEQUENCE-FIRST-LAST.parquet`: the file's number in its partition and the input offsets it covers.
    public static func fileName(sequence: Int64, first: Int64, last: Int64) -> String {
        String(format: "%010lld-%020lld-%020lld.parquet", sequence, first, last)
    }

    /// Sequence, first and last offset of a log file's name.
    public static func parse(fileName name: String) -> (sequence: Int64, first: Int64, last: Int64)? {
        guard name.hasSuffix(".parquet"), !name.hasPrefix(".") else { return nil }
        let parts = name.dropLast(".parquet".count).split(separator: "-").compactMap { Int64($0) }
        return parts.count == 3 ? (parts[0], parts[1], parts[2]) : nil
    }

    /// The next file sequence of each view for a partition (for its checkpoint).
    package func nextSequences(partition: Int32) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for name in views.keys { result[name] = sequences[Key(view: name, partition: partition), default: 0] }
        return result
    }

    /// Recovery of a partition: removes the files written after its checkpoint (sequence ≥ the
    /// checkpointed next sequence; all of them without a checkpoint) and its own unfinished
    /// temporary files (a running compaction's `.compact-*` ones are that compaction's), drops what is buffered, and continues numbering from the checkpoint.
    /// Returns the number of files removed.
    @discardableResult
    package func recover(partition: Int32, nextSequences: [String: Int64]) throws -> Int {
        var removed = 0
        let fm = FileManager.default
        for view in views.keys {
            let key = Key(view: view, partition: partition)
            buffers[key] = nil
            let keep = nextSequences[view] ?? 0
            sequences[key] = keep
            let dir = directory(view: view, partition: partition)
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                let stale: Bool
                if name.hasPrefix(".") && name.hasSuffix(".tmp") && !name.hasPrefix(".compact-") {
                    stale = true
                } else if let parsed = OfflineLog.parse(fileName: name) {
                    stale = parsed.sequence >= keep
                } else {
                    stale = false
                }
                guard stale else { continue }
                try fm.removeItem(atPath: "\(dir)/\(name)")
                removed += 1
            }
        }
        return removed
    }

    /// Gives a partition's files of a view every column of the view's current schema: after
    /// features were added to the view, its earlier files lack them, and readers that take a
    /// directory's schema from one file (Feast's file store, pyarrow, DuckDB's globs) would drop
    /// the new columns or fail. Each such file is rewritten with the same rows in the same order,
    /// the added features null, atomically under its own name (the storage thread has nothing of
    /// the partition queued: it is called when the partition is restored). Files already whole,
    /// and files holding a column the view no longer has, are left as they are. Holds the view's
    /// compaction lock meanwhile. Returns the files rewritten and their rows.
    @discardableResult
    package func widen(view name: String, partition: Int32) throws -> (files: Int, rows: Int) {
        guard let view = views[name] else { return (0, 0) }
        let schema = OfflineLog.schema(of: view)
        let dir = directory(view: name, partition: partition)
        let names = OfflineLog.current(((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { OfflineLog.parse(fileName: $0) != nil })
        guard !names.isEmpty else { return (0, 0) }
        let lock = open("\(directory)/\(name)/.compact.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw FileError("open the compaction lock", "\(directory)/\(name)/.compact.lock") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { throw FileError("lock", "\(directory)/\(name)/.compact.lock") }
        var files = 0, rows = 0
        for file in names {
            let path = "\(dir)/\(file)"
            let reader = try ParquetFileReader(path: path)
            guard reader.schema != schema else { continue }
            // Where each current column is in the file (nil: added since), by name and type.
            let sources = schema.fields.map { f in reader.schema.fields.firstIndex { $0.name == f.name && $0.type == f.type } }
            guard reader.schema.fields.allSatisfy({ old in schema.fields.contains { $0.name == old.name && $0.type == old.type } }) else { continue }
            try AtomicFile.replace(path) { temporary in
                let writer = try ParquetFileWriter(path: temporary, schema: schema, compression: compression, metadata: reader.metadata)
                for g in reader.rowGroups.indices {
                    let columns = try reader.read(rowGroup: g)
                    let count = columns.first?.count ?? 0
                    try writer.write(rowGroup: zip(schema.fields, sources).map { field, source in
                        if let source { return columns[source] }
                        var empty = Column(type: OfflineLog.valueType(field.type))
                        for _ in 0..<count { empty.appendNull() }
                        return empty
                    })
                }
                try writer.close()
            }
            files += 1
            rows += reader.rowCount
        }
        return (files, rows)
    }

    static func valueType(_ t: ParquetType) -> ValueType {
        switch t {
        case .string: return .string
        case .double: return .float64
        case .bool: return .bool
        default: return .int64
        }
    }

    /// The Parquet files of a view that hold each row once, in offset order per partition.
    ///
    /// `tessera compact` writes a merged file, named by its inputs' range, before it removes the
    /// inputs; for a moment (or after a crash there, until the next compaction) a partition holds
    /// both. A file whose offset range lies inside another file's range of the same partition is
    /// superseded by it and left out here.
    public static func files(directory: String, view: String) -> [String] {
        let base = "\(directory)/\(view)"
        let fm = FileManager.default
        let partitions = ((try? fm.contentsOfDirectory(atPath: base)) ?? []).filter { $0.hasPrefix("partition=") }.sorted()
        return partitions.flatMap { p in
            current(((try? fm.contentsOfDirectory(atPath: "\(base)/\(p)")) ?? []).filter { parse(fileName: $0) != nil })
                .map { "\(base)/\(p)/\($0)" }
        }
    }

    /// The names of one partition's files that no other file supersedes, in sequence order.
    public static func current(_ names: [String]) -> [String] {
        let files = names.compactMap { name in parse(fileName: name).map { (name: name, range: $0) } }
        // Widest first among equal starts: a file is superseded by an earlier, wider range.
        var cover = Int64.min
        var superseded = Set<String>()
        for f in files.sorted(by: { ($0.range.first, -$0.range.last) < ($1.range.first, -$1.range.last) }) {
            if f.range.last <= cover { superseded.insert(f.name) } else { cover = f.range.last }
        }
        return files.map(\.name).filter { !superseded.contains($0) }.sorted()
    }
}
