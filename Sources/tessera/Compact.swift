import ArgumentParser
import Foundation
import TesseraTraining

/// `tessera compact`: merges the small files of an offline log (see `Compaction` for the procedure
/// that keeps every row readable exactly once across crashes).
struct Compact: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge the small Parquet files of each view and partition of an offline log into larger ones.",
        discussion: """
            Consecutive files of a partition are merged in offset order into files of at most --target-rows rows, \
            named by the first and last input offsets they cover; inputs are removed only after the merged file \
            is durable and in place. Only files the workers' checkpoints cover are merged (give the --state-dir \
            and --group of `tessera run`). Safe to run beside the workers, and to re-run after a crash.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories (repeatable).")
    var topologies: [String] = []
    @Option(help: "Directory of the offline log.") var offlineDir: String?
    @Option(help: "Only this feature view.") var view: String?
    @Option(help: "Rows per merged file at most (default 1000000).") var targetRows = 1_000_000
    @Option(help: "The workers' consumer group (default tessera).") var group: String?
    @Option(help: "The workers' checkpoint directory (default OFFLINE_DIR/_state).") var stateDir: String?
    @Flag(help: "Merge every file, also those no checkpoint covers: only for a log no worker writes (a backfill, a copy).")
    var allFiles = false

    func run() throws {
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { $0.split(separator: ",").map(String.init) } ?? []) : topologies
        guard !paths.isEmpty else { throw ValidationError("missing --topology") }
        let topologies = try loadTopologies(paths)
        var views = topologies.flatMap(\.views)
        if let view {
            views = views.filter { $0.name == view }
            guard !views.isEmpty else { throw ValidationError("no feature view \(view) in the topologies") }
        }
        let directory = try required(offlineDir, "offline-dir")
        var topics: [String: String] = [:]
        for topology in topologies {
            for v in topology.views { topics[v.name] = topology.source(named: v.source)?.topic }
        }
        let checkpoints: Compaction.Checkpointed = allFiles ? { @Sendable _, _ in .max } : Compaction.checkpoints(stateDirectory: setting(stateDir, "state-dir") ?? "\(directory)/_state",
                                                 group: setting(group, "group") ?? "tessera", topics: topics)
        do {
            let reports = try Compaction(directory: directory, targetRows: targetRows, checkpointed: checkpoints).run(views: views)
            for r in reports {
                print("\(r.view)/\(r.partition): \(r.filesBefore) → \(r.filesAfter) files, \(r.rows) rows")
            }
        } catch let error as HistoricalError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}
