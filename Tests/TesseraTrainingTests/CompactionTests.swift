import Foundation
import TesseraCore
import TesseraEngine
import TesseraLog
import TesseraOffline
import TesseraTestSupport
import TesseraTopology
import TesseraTraining
import Testing

@Suite("Compaction keeps every row once, in order, across crashes")
struct CompactionTests {
    /// Every row of every partition, in file order, as printable values.
    func rows(_ directory: String, view: String, files: [String]) throws -> [String: [[Value?]]] {
        var out: [String: [[Value?]]] = [:]
        for file in files {
            let partition = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
            let columns = try ParquetFileReader(path: file).readAll()
            for i in 0..<(columns.first?.count ?? 0) { out[partition, default: []].append(columns.map { $0.value(at: i) }) }
        }
        return out
    }

    func join(_ scenario: Scenario, _ input: String) throws -> [Column] {
        var options = HistoricalOptions()
        options.fullFeatureNames = true
        return try HistoricalRetrieval(views: scenario.views, offlineDirectory: scenario.directory, options: options)
            .join(try Frame.read(path: input), features: try FeatureReference.parse(list: "user_view:*,pair_view:*,card_view:*")).columns
    }

    /// Every file counts as checkpointed.
    static let everything: Compaction.Checkpointed = { _, _ in .max }

    @Test("merging small files keeps rows, their order and the training set")
    func merge() throws {
        let scenario = try Scenario(seed: 50)
        let input = try scenario.writeEntities(parquet: true, variant: 0)
        let before = try join(scenario, input)
        var rowsBefore: [String: [String: [[Value?]]]] = [:]
        for view in scenario.views {
            rowsBefore[view.name] = try rows(scenario.directory, view: view.name, files: OfflineLog.files(directory: scenario.directory, view: view.name))
        }
        let filesBefore = scenario.views.map { OfflineLog.files(directory: scenario.directory, view: $0.name).count }
        let reports = try Compaction(directory: scenario.directory, targetRows: 60, checkpointed: Self.everything).run(views: scenario.views)
        #expect(reports.count == 9)
        for (v, view) in scenario.views.enumerated() {
            let files = OfflineLog.files(directory: scenario.directory, view: view.name)
            #expect(files.count < filesBefore[v], "\(view.name): \(filesBefore[v]) → \(files.count) files")
            // No two neighbours could have been merged further.
            let counts = try files.map { (URL(fileURLWithPath: $0).deletingLastPathComponent().path, try ParquetFileReader(path: $0).rowCount) }
            for (a, b) in zip(counts, counts.dropFirst()) where a.0 == b.0 { #expect(a.1 + b.1 > 60) }
            #expect(try rows(scenario.directory, view: view.name, files: files) == rowsBefore[view.name]!)
            for file in files {
                #expect(try ParquetFileReader(path: file).rowCount <= 60)
                #expect(OfflineLog.parse(fileName: URL(fileURLWithPath: file).lastPathComponent) != nil)
            }
        }
        #expect(try join(scenario, input) == before)
        // A second run has nothing left to merge below the target.
        let again = try Compaction(directory: scenario.directory, targetRows: 60, checkpointed: Self.everything).run(views: scenario.views)
        #expect(again.map(\.filesAfter) == reports.map(\.filesAfter))
    }

    @Test("files at or after a partition's checkpointed sequence are left as they are")
    func checkpointed() throws {
        let scenario = try Scenario(seed: 52)
        let view = scenario.views[0]
        let before = OfflineLog.files(directory: scenario.directory, view: view.name)
        let rowsBefore = try rows(scenario.directory, view: view.name, files: before)
        let limits: [Int32: Int64] = [0: 0, 1: 3, 2: 1_000]
        _ = try Compaction(directory: scenario.directory, targetRows: 1_000, checkpointed: { _, p in limits[p]! }).run(views: [view])
        let after = OfflineLog.files(directory: scenario.directory, view: view.name)
        let sequence = { (path: String) in OfflineLog.parse(fileName: URL(fileURLWithPath: path).lastPathComponent)!.sequence }
        let partition = { (path: String) in URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent }
        for p in limits.keys {
            let was = before.filter { partition($0) == "partition=\(p)" }, now = after.filter { partition($0) == "partition=\(p)" }
            // Every file the checkpoint does not cover is untouched; the covered ones became one file.
            #expect(was.filter { sequence($0) >= limits[p]! } == now.filter { sequence($0) >= limits[p]! })
            #expect(now.filter { sequence($0) < limits[p]! }.count == min(1, was.filter { sequence($0) < limits[p]! }.count))
        }
        #expect(after.count < before.count)
        #expect(try rows(scenario.directory, view: view.name, files: after) == rowsBefore)
    }

    @Test("a crash after the rename (inputs still there) or before it (a temporary file) reads every row once and is finished by the next run")
    func crash() throws {
        let scenario = try Scenario(seed: 51)
        let view = scenario.views[0]
        let input = try scenario.writeEntities(parquet: true, variant: 0)
        let before = try join(scenario, input)
        let originals = OfflineLog.files(directory: scenario.directory, view: view.name)
        let rowsBefore = try rows(scenario.directory, view: view.name, files: originals)
        let saved = temporaryDirectory("compaction-saved")
        for (i, file) in originals.enumerated() { try FileManager.default.copyItem(atPath: file, toPath: "\(saved)/\(i)") }
        _ = try Compaction(directory: scenario.directory, targetRows: 80, checkpointed: Self.everything).run(views: [view])
        let merged = OfflineLog.files(directory: scenario.directory, view: view.name)

        // Crash after the rename, before the inputs were removed: the inputs come back, plus a
        // temporary file of a merge that never finished.
        for (i, file) in originals.enumerated() where !FileManager.default.fileExists(atPath: file) {
            try FileManager.default.copyItem(atPath: "\(saved)/\(i)", toPath: file)
        }
        let partition = URL(fileURLWithPath: originals[0]).deletingLastPathComponent().path
        try FileManager.default.copyItem(atPath: merged[0], toPath: "\(partition)/.compact-00000000000000000000-99999999999999999999.parquet.tmp")
        #expect(try FileManager.default.contentsOfDirectory(atPath: partition).filter { $0.hasSuffix(".parquet") }.count
                > merged.filter { $0.hasPrefix(partition + "/") }.count)
        #expect(OfflineLog.files(directory: scenario.directory, view: view.name) == merged)
        #expect(try rows(scenario.directory, view: view.name, files: merged) == rowsBefore)
        #expect(try join(scenario, input) == before)

        // The next run removes what the crash left and changes nothing else.
        _ = try Compaction(directory: scenario.directory, targetRows: 80, checkpointed: Self.everything).run(views: [view])
        #expect(OfflineLog.files(directory: scenario.directory, view: view.name) == merged)
        #expect(try FileManager.default.contentsOfDirectory(atPath: partition).filter { $0.hasSuffix(".tmp") }.isEmpty)
        #expect(try join(scenario, input) == before)
    }
}
