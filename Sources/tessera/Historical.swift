import ArgumentParser
import Foundation
import Synchronization
import TesseraTraining

/// `tessera historical`: a training set, the point-in-time join of an entity frame with features
/// from the offline log.
struct Historical: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build a training set: each entity row joined with the features as they were at its timestamp.",
        discussion: """
            For every row of the entity frame and every requested view: the offline row of the same entity \
            (all the view's join keys equal) with the latest event_timestamp ≤ the row's timestamp, ties broken by \
            the later created_timestamp, and not older than the view's TTL; nulls where there is none. \
            --as-served also requires created_timestamp ≤ the row's timestamp.

            Output: every entity-frame column in order, then the features, one row per input row in input order.

            Timestamps in the entity frame: Parquet timestamp columns of any unit, RFC 3339 text \
            (2026-01-01T12:00:00.5Z, a space for the T, an offset; none means UTC), or integer epochs \
            in s, ms, us or ns (--epoch-unit; by default told apart by magnitude, which holds for 1973–5138). \
            CSV output writes timestamps as RFC 3339 with microseconds and Z.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories (repeatable).")
    var topologies: [String] = []
    @Option(help: "Directory of the offline log.") var offlineDir: String?
    @Option(help: "The entity frame: join keys and a timestamp per row (.csv or .parquet).") var entities: String
    @Option(help: "Features: VIEW:FEATURE,… or VIEW:* for every feature of a view.") var features: String
    @Option(help: "The training set to write (.csv or .parquet).") var out: String
    @Option(help: "The entity frame's timestamp column (default event_timestamp).") var timestampColumn = "event_timestamp"
    @Option(help: "Unit of integer timestamps: auto, s, ms, us or ns (default auto).") var epochUnit = "auto"
    @Flag(help: "Name the feature columns VIEW__FEATURE.") var fullFeatureNames = false
    @Flag(help: "Only rows created by the entity row's timestamp (created_timestamp ≤ ts): what serving returned then.")
    var asServed = false

    func run() throws {
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { $0.split(separator: ",").map(String.init) } ?? []) : topologies
        guard !paths.isEmpty else { throw ValidationError("missing --topology") }
        guard let unit = Timestamps.EpochUnit(rawValue: epochUnit) else {
            throw ValidationError("--epoch-unit takes auto, s, ms, us or ns, not \(epochUnit)")
        }
        let views = try loadTopologies(paths).flatMap(\.views)
        var options = HistoricalOptions()
        options.timestampColumn = timestampColumn
        options.fullFeatureNames = fullFeatureNames
        options.asServed = asServed
        options.epochUnit = unit
        let retrieval = HistoricalRetrieval(views: views, offlineDirectory: try required(offlineDir, "offline-dir"), options: options)
        let bar = isatty(2) != 0 ? ProgressBar() : nil
        var progress: (@Sendable (HistoricalProgress) -> Void)?
        if let bar { progress = { bar.show($0) } }
        do {
            let references = try FeatureReference.parse(list: features)
            let frame = try Frame.read(path: entities)
            let result = try retrieval.join(frame, features: references, progress: progress)
            bar?.clear()
            try result.write(to: out)
            printError("\(out): \(result.rowCount) rows, \(result.names.count) columns")
        } catch let error as HistoricalError {
            bar?.clear()
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}

/// One line on stderr, redrawn in place while a join runs (only when stderr is a terminal).
final class ProgressBar: Sendable {
    private let last = Mutex<String>("")

    func show(_ p: HistoricalProgress) {
        let fraction = p.total > 0 ? min(1, Double(p.done) / Double(p.total)) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let spilled = p.spilledBytes > 0 ? " (spilled \(p.spilledBytes >> 20) MiB)" : ""
        let line = "\(p.view) \(p.phase.rawValue) [" + String(repeating: "#", count: filled)
            + String(repeating: ".", count: width - filled) + "] \(Int(fraction * 100))%\(spilled)"
        last.withLock { previous in
            guard previous != line else { return }
            previous = line
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        }
    }

    func clear() {
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
