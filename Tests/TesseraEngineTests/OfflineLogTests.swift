import Foundation
import Testing
import TesseraCore
import TesseraLog
import TesseraOffline
import TesseraTopology

@Suite("Offline log files built row group by row group")
struct OfflineLogTests {
    /// `count` closed rows of user_stats from row `from` on: nulls, strings and doubles included.
    func emissions(_ view: FeatureView, from: Int, count: Int, using g: inout SeededGenerator) -> (EmissionBatch, [Micros], [Int64]) {
        var batch = EmissionBatch(keyTypes: [.int64], featureTypes: view.spec.features.map { view.spec.outputType(of: $0) })
        var created: [Micros] = [], offsets: [Int64] = []
        for i in from..<(from + count) {
            batch.eventTimes.append(Int64(i) * 1_000)
            batch.entityIds.append(UInt32(i % 97))
            batch.closers.append(-1)
            batch.keys[0].append(int: Int64(i % 97))
            for f in batch.features.indices {
                if Int.random(in: 0..<5, using: &g) == 0 { batch.features[f].appendNull(); continue }
                switch batch.features[f].type {
                case .int64: batch.features[f].append(int: Int64.random(in: 0...1_000, using: &g))
                case .float64: batch.features[f].append(double: Double.random(in: 0...500, using: &g))
                case .bool: batch.features[f].append(bool: Bool.random(using: &g))
                case .string: batch.features[f].append(string: ["paid", "refunded", "cancelled"].randomElement(using: &g)!)
                }
            }
            created.append(Int64(i) * 1_000 + 7)
            offsets.append(Int64(i))
        }
        return (batch, created, offsets)
    }

    @Test("a file built from row groups handed over as they fill, one of them written twice (a retry), each one's columns reused once written, holds the rows of a file written at once", arguments: [1, 2, 3])
    func rowGroups(seed: UInt64) throws {
        let view = try growth().views[0]
        let dir = temporaryDirectory("offline-pieces")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pieces = try OfflineLog(directory: dir + "/pieces", views: [view], rowGroupRows: 250)
        let whole = try OfflineLog(directory: dir + "/whole", views: [view], rowGroupRows: 1 << 30)
        var g = SeededGenerator(seed: seed)
        var written = 0, handedOver = 0, row = 0
        for file in 0..<2 {
            for _ in 0..<Int.random(in: 5...12, using: &g) {
                let n = Int.random(in: 1...180, using: &g)
                let (batch, created, offsets) = emissions(view, from: row, count: n, using: &g)
                row += n
                for log in [pieces, whole] {
                    log.append(view: view.name, partition: 3, emissions: batch, count: n, created: created, offsets: offsets)
                }
                var taken = pieces.takeRowGroups()
                for i in taken.indices {
                    #expect(taken[i].rows >= 250)
                    #expect(try pieces.write(taken[i]) == 0)
                    if handedOver == 1 { try pieces.write(taken[i]) }
                    handedOver += 1
                    // Its columns go to the next row groups, emptied (the storage thread does so).
                    pieces.recycle(&taken[i])
                }
            }
            let ends = pieces.detach()
            #expect(ends.count == 1)
            for end in ends {
                if file == 1 {
                    // The view's directory gone (a file in its place): the end fails, and is
                    // written once it is back.
                    let viewDirectory = dir + "/pieces/user_stats"
                    try FileManager.default.moveItem(atPath: viewDirectory, toPath: viewDirectory + ".away")
                    #expect(FileManager.default.createFile(atPath: viewDirectory, contents: Data("not a directory".utf8)))
                    #expect(throws: (any Error).self) { try pieces.write(end) }
                    try FileManager.default.removeItem(atPath: viewDirectory)
                    try FileManager.default.moveItem(atPath: viewDirectory + ".away", toPath: viewDirectory)
                }
                written += try pieces.write(end)
            }
            try whole.roll()
        }
        #expect(handedOver >= 2)
        #expect(written == row)
        #expect(pieces.nextSequences(partition: 3)[view.name] == 2)
        let built = OfflineLog.files(directory: dir + "/pieces", view: view.name)
        let reference = OfflineLog.files(directory: dir + "/whole", view: view.name)
        #expect(built.map { URL(fileURLWithPath: $0).lastPathComponent } == reference.map { URL(fileURLWithPath: $0).lastPathComponent })
        #expect(built.count == 2)
        var groups = 0
        for (b, r) in zip(built, reference) {
            let bf = try ParquetFileReader(path: b), rf = try ParquetFileReader(path: r)
            groups += bf.rowGroups.count
            #expect(bf.schema == rf.schema)
            #expect(bf.metadata.map { "\($0)" } == rf.metadata.map { "\($0)" })
            #expect(try bf.readAll() == rf.readAll())
        }
        #expect(groups > 2)
        // No temporary file is left behind.
        let partition = dir + "/pieces/user_stats/partition=3"
        #expect(try FileManager.default.contentsOfDirectory(atPath: partition).filter { $0.hasPrefix(".") } == [])
    }

    @Test("a file dropped unfinished (its partition revoked) leaves no temporary file")
    func dropped() throws {
        let view = try growth().views[0]
        let dir = temporaryDirectory("offline-dropped")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try OfflineLog(directory: dir, views: [view], rowGroupRows: 10)
        var g = SeededGenerator(seed: 9)
        let (batch, created, offsets) = emissions(view, from: 0, count: 25, using: &g)
        log.append(view: view.name, partition: 0, emissions: batch, count: 25, created: created, offsets: offsets)
        let partition = dir + "/user_stats/partition=0"
        do {
            let groups = log.takeRowGroups()
            #expect(groups.count == 1)
            for group in groups { try log.write(group) }
            #expect(try FileManager.default.contentsOfDirectory(atPath: partition).filter { $0.hasSuffix(".tmp") }.count == 1)
        }
        log.discard(partitions: [0])
        #expect(try FileManager.default.contentsOfDirectory(atPath: partition) == [])
    }
}
