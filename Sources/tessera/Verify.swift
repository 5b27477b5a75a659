import ArgumentParser
import Foundation
import TesseraCore
import TesseraEngine
import TesseraOnline
import TesseraRedis
import TesseraTopology

/// `tessera verify`: are the online rows what the state and the offline log say they must be?
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare sampled entities' online rows with their state and their latest offline rows.",
        discussion: """
            Samples entities from the group's checkpoints and holds each one's Redis row against \
            its current row in the checkpointed state and against its latest offline row. Rows are \
            matched by created timestamp: beside a running worker, a row written after the \
            checkpoint or not yet in the offline log counts as newer, not as a mismatch. A mismatch \
            is a row missing (younger than the TTL), older than it must be, or the same row with \
            other values. Exit status 1 when there is one.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories.") var topologies: [String] = []
    @Option(help: "Directory of the offline log.") var offlineDir: String?
    @Option(help: "Directory of the checkpoints (default OFFLINE_DIR/_state).") var stateDir: String?
    @Option(help: "Consumer group whose checkpoints are read (default tessera).") var group: String?
    @Option(help: "Redis URL.") var redis: String?
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?
    @Option(help: "Entities to sample over every online view and partition (all when there are fewer).") var sample = 1_000
    @Option(help: "Only this feature view (repeatable).") var view: [String] = []
    @Option(help: "Seed of the sample, to repeat it.") var seed: UInt64?
    @Flag(help: "Print the report as JSON.") var json = false

    func run() throws {
        guard sample > 0 else { throw ValidationError("--sample takes a positive count, got \(sample)") }
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { [$0] } ?? ["topologies"]) : topologies
        let loaded = try loadTopologies(paths)
        let known = Set(loaded.flatMap(\.views).filter(\.online).map(\.name))
        for v in view where !known.contains(v) { throw ValidationError("no online feature view \(v) in the topologies") }
        let offline = try required(offlineDir, "offline-dir")
        let endpoint = try RedisEndpoint(url: try required(redis, "redis"), environment: ProcessInfo.processInfo.environment)
        var options = Verification.Options(topologies: loaded, offlineDirectory: offline,
                                           stateDirectory: setting(stateDir, "state-dir") ?? "\(offline)/_state",
                                           group: setting(group, "group") ?? "tessera", redis: endpoint)
        options.keyPrefix = setting(keyPrefix, "key-prefix") ?? "tessera:"
        options.sample = sample
        options.views = view
        options.seed = seed
        let report = try Verification(options).run(now: SystemClock().now())
        print(json ? Self.json(report) : Self.text(report))
        if !report.mismatches.isEmpty { throw ExitCode(1) }
    }

    static func row(_ e: ExpectedRow, key: [Value], view: FeatureView) -> OnlineRow {
        var fields: [String: Value] = [:]
        for (f, v) in zip(view.spec.features, e.features) { if let v { fields[f.name] = v } }
        return OnlineRow(key: key, fields: fields, eventTime: e.time == .min ? nil : e.time, createdTime: e.created == .min ? nil : e.created)
    }

    static func counts(_ c: [OnlineCheck: Int]) -> String {
        OnlineCheck.allCases.compactMap { k in c[k].map { "\($0) \(k.rawValue)" } }.joined(separator: ", ")
    }

    static func text(_ r: Verification.Report) -> String {
        var lines = ["\(r.sampled) of \(r.entities) entities sampled; \(r.mismatches.count) mismatches"]
        for (view, by) in r.counts.sorted(by: { $0.key < $1.key }) {
            for (against, c) in by.sorted(by: { $0.key > $1.key }) { lines.append("  \(view) against the \(against): \(counts(c))") }
        }
        for m in r.mismatches {
            lines.append("\(m.redisKey) (\(m.topic)/\(m.partition)) \(m.check.rawValue) against the \(m.against):")
            lines.append("  online   \(m.online.json(view: m.view))")
            lines.append("  expected \(row(m.expected, key: m.key, view: m.view).json(view: m.view))")
        }
        return lines.joined(separator: "\n")
    }

    static func json(_ r: Verification.Report) -> String {
        var views: [String] = []
        for (view, by) in r.counts.sorted(by: { $0.key < $1.key }) {
            let parts = by.sorted(by: { $0.key > $1.key }).map { against, c in
                JSONText.quoted(against) + ": {" + OnlineCheck.allCases.compactMap { k in c[k].map { "\(JSONText.quoted(k.rawValue)): \($0)" } }.joined(separator: ", ") + "}"
            }
            views.append("\(JSONText.quoted(view)): {\(parts.joined(separator: ", "))}")
        }
        let mismatches = r.mismatches.map { m in
            "{\"view\": \(JSONText.quoted(m.view.name)), \"key\": \(JSONText.quoted(m.redisKey)), \"topic\": \(JSONText.quoted(m.topic)), "
                + "\"partition\": \(m.partition), \"against\": \(JSONText.quoted(m.against)), \"check\": \(JSONText.quoted(m.check.rawValue)), "
                + "\"online\": \(m.online.json(view: m.view)), \"expected\": \(row(m.expected, key: m.key, view: m.view).json(view: m.view))}"
        }
        return "{\"entities\": \(r.entities), \"sampled\": \(r.sampled), \"mismatches\": [\(mismatches.joined(separator: ", "))], \"views\": {\(views.joined(separator: ", "))}}"
    }
}
