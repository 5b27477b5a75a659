import ArgumentParser
import Foundation
import TesseraCore
import TesseraOnline
import TesseraTopology

/// `tessera describe`: what the topologies define and where their rows go — the lineage from
/// topics to views to the online store and the offline log.
struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every topology's sources, entities, views and features, and where their rows go.",
        discussion: """
            For each view: its source topic, entities and join keys, TTL, owner, description, tags, \
            features (aggregate, field, window, filter), its state version (a hash of its definition: \
            a changed feature changes it), the Redis key of its rows and the directory of its offline \
            files. --json prints the same as one JSON document; --dot prints the lineage graph \
            (topic → view → Redis / offline log) for Graphviz (`tessera describe --dot | dot -Tsvg`).
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories.") var topologies: [String] = []
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?
    @Option(help: "Directory of the offline log (default: shown as OFFLINE_DIR).") var offlineDir: String?
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Print the lineage graph in Graphviz DOT.") var dot = false

    func validate() throws {
        if json && dot { throw ValidationError("--json and --dot exclude each other") }
    }

    func run() throws {
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { [$0] } ?? ["topologies"]) : topologies
        let lineage = Lineage(try loadTopologies(paths), layout: OnlineLayout(prefix: setting(keyPrefix, "key-prefix") ?? "tessera:"),
                              offlineDirectory: setting(offlineDir, "offline-dir") ?? "OFFLINE_DIR")
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(lineage), as: UTF8.self))
        } else if dot {
            print(lineage.dot)
        } else {
            print(lineage.text, terminator: "")
        }
    }
}

/// The topologies as `describe` shows them.
struct Lineage: Encodable {
    struct Team: Encodable {
        var file: String
        var team: String
        var owner: String?
        var sources: [SourceInfo]
        var entities: [EntityInfo]
        var views: [ViewInfo]
    }

    struct SourceInfo: Encodable {
        var name: String
        var topic: String
        var format: String
        var key: String?
        var timestamp: String
        var allowedLateness: String
        var fields: [String: String]

        enum CodingKeys: String, CodingKey {
            case name, topic, format, key, timestamp, fields
            case allowedLateness = "allowed_lateness"
        }
    }

    struct EntityInfo: Encodable {
        var name: String
        var joinKeys: [String: String]

        enum CodingKeys: String, CodingKey {
            case name
            case joinKeys = "join_keys"
        }
    }

    struct FeatureInfo: Encodable {
        var name: String
        var aggregate: String
        var field: String?
        var window: String
        var filter: String?
        var percentile: Double?
        var type: String

        enum CodingKeys: String, CodingKey {
            case name, aggregate, field, window, percentile, type
            case filter = "where"
        }
    }

    struct ViewInfo: Encodable {
        var name: String
        var source: String
        var topic: String
        var entities: [String]
        var joinKeys: [String]
        var ttl: String?
        var owner: String?
        var description: String?
        var tags: [String: String]
        var features: [FeatureInfo]
        var stateVersion: String
        /// The Redis key of an entity's row (join-key values in angle brackets), when online.
        var onlineKey: String?
        /// How the online rows are laid out: `tessera`, or `feast` (Feast's Redis store, `project`).
        var onlineLayout: String?
        /// The directory of the view's offline files, when offline.
        var offlinePath: String?
        var baselines: [String]
        /// `freshness_target`, and the statistics' rolling window and hop (`quality:`).
        var freshnessTarget: String?
        var qualityWindow: String
        var qualityHop: String

        enum CodingKeys: String, CodingKey {
            case name, source, topic, entities, ttl, owner, description, tags, features, baselines
            case freshnessTarget = "freshness_target"
            case qualityWindow = "quality_window"
            case qualityHop = "quality_hop"
            case joinKeys = "join_keys"
            case stateVersion = "state_version"
            case onlineKey = "online_key"
            case onlineLayout = "online_layout"
            case offlinePath = "offline_path"
        }
    }

    var topologies: [Team]

    init(_ loaded: [Topology], layout: OnlineLayout, offlineDirectory: String) {
        topologies = loaded.map { t in
            Team(
                file: t.file, team: t.team, owner: t.owner,
                sources: t.sources.map { s in
                    SourceInfo(name: s.name, topic: s.topic, format: s.format.rawValue, key: s.key,
                               timestamp: "\(s.timestamp.field) (\(s.timestamp.unit.rawValue))",
                               allowedLateness: Time.format(duration: s.allowedLateness),
                               fields: Dictionary(uniqueKeysWithValues: zip(s.schema.names, s.schema.types.map(\.rawValue))))
                },
                entities: t.entities.map { e in
                    EntityInfo(name: e.name, joinKeys: Dictionary(uniqueKeysWithValues: e.joinKeys.map { ($0.name, $0.type.rawValue) }))
                },
                views: t.views.map { v in
                    let topic = t.source(named: v.source)?.topic ?? v.source
                    var key = layout.prefix + v.name
                    for k in v.joinKeys { key += ":<\(k.name)>" }
                    if let project = v.onlineFormat.feastProject {
                        // Feast's binary key: the serialized entity key, then the project.
                        key = "feast:<\(v.joinKeys.map(\.name).sorted().joined(separator: ","))>:\(project)"
                    }
                    return ViewInfo(
                        name: v.name, source: v.source, topic: topic, entities: v.entities,
                        joinKeys: v.joinKeys.map { "\($0.name):\($0.type.rawValue)" },
                        ttl: v.ttl == 0 ? nil : Time.format(duration: v.ttl), owner: v.owner ?? t.owner, description: v.description,
                        tags: Dictionary(v.tags.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last }),
                        features: zip(v.features, v.spec.features).map { f, spec in
                            FeatureInfo(name: f.name, aggregate: f.aggregate.rawValue, field: f.field, window: f.window.description,
                                        filter: f.filterText, percentile: f.percentile, type: v.spec.outputType(of: spec).rawValue)
                        },
                        stateVersion: Lineage.version(of: v.spec),
                        onlineKey: v.online ? key : nil,
                        onlineLayout: v.online ? (v.onlineFormat.feastProject.map { "feast project \($0)" } ?? "tessera") : nil,
                        offlinePath: v.offline ? "\(offlineDirectory)/\(v.name)/partition=<P>/" : nil,
                        baselines: v.quality.baselinePath.map { [$0] } ?? [],
                        freshnessTarget: v.freshnessTarget.map { Time.format(duration: $0) },
                        qualityWindow: Time.format(duration: v.quality.window), qualityHop: Time.format(duration: v.quality.hop))
                })
        }
    }

    /// A short hash of the view's definition as its state knows it (features, windows, keys):
    /// two workers with the same version read each other's checkpoints as they are.
    static func version(of spec: ViewSpec) -> String {
        let bytes = Array(spec.fingerprint.utf8)
        let h = bytes.withUnsafeBufferPointer { StableHash.hash(bytes: $0) }
        return String(String(format: "%016llx", h).prefix(12))
    }

    var text: String {
        var out = ""
        for t in topologies {
            out += "\(t.file): team \(t.team)\(t.owner.map { ", owner \($0)" } ?? "")\n"
            for s in t.sources {
                out += "  source \(s.name): topic \(s.topic), \(s.format), key \(s.key ?? "none"), event time \(s.timestamp), "
                out += "allowed lateness \(s.allowedLateness)\n"
            }
            for e in t.entities {
                out += "  entity \(e.name): \(e.joinKeys.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ", "))\n"
            }
            for v in t.views {
                out += "  view \(v.name) (state version \(v.stateVersion)): topic \(v.topic) → entities \(v.entities.joined(separator: ", "))"
                out += " [\(v.joinKeys.joined(separator: ", "))], ttl \(v.ttl ?? "none")\n"
                if let owner = v.owner { out += "    owner: \(owner)\n" }
                if let d = v.description { out += "    description: \(d)\n" }
                if !v.tags.isEmpty { out += "    tags: \(v.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))\n" }
                for f in v.features {
                    var line = "    \(f.name): \(f.aggregate)"
                    if let field = f.field { line += "(\(field))" }
                    if let p = f.percentile { line += " p\(p)" }
                    line += " over \(f.window)"
                    if let filter = f.filter { line += " where \(filter)" }
                    out += line + " → \(f.type)\n"
                }
                out += "    online: \(v.onlineKey.map { "Redis \($0) (\(v.onlineLayout ?? "tessera") layout)" } ?? "off")\n"
                out += "    offline: \(v.offlinePath ?? "off")\n"
                out += "    baselines: \(v.baselines.isEmpty ? "none" : v.baselines.joined(separator: ", "))\n"
                out += "    quality: statistics over \(v.qualityWindow) (hop \(v.qualityHop)), freshness target \(v.freshnessTarget ?? "none")\n"
            }
        }
        return out
    }

    /// The lineage graph: topics → views → the online store and the offline log.
    var dot: String {
        // A quoted DOT string: backslashes and quotes escaped, line breaks as \n.
        func q(_ s: String) -> String {
            let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"" + escaped.replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
        var lines = ["digraph tessera {", "  rankdir=LR;", "  node [fontname=\"Helvetica\"];"]
        let views = topologies.flatMap { t in t.views.map { (t.team, $0) } }
        for topic in Set(views.map(\.1.topic)).sorted() {
            lines.append("  \(q("topic:" + topic)) [shape=cylinder, label=\(q("Kafka topic\n" + topic))];")
        }
        var online = false, offline = false
        for (team, v) in views {
            lines.append("  \(q("view:" + v.name)) [shape=box, label=\(q("\(v.name)\nteam \(team), \(v.features.count) features"))];")
            lines.append("  \(q("topic:" + v.topic)) -> \(q("view:" + v.name)) [label=\(q(v.source))];")
            if let key = v.onlineKey {
                online = true
                lines.append("  \(q("view:" + v.name)) -> \(q("online")) [label=\(q(key))];")
            }
            if v.offlinePath != nil {
                offline = true
                lines.append("  \(q("view:" + v.name)) -> \(q("offline"));")
            }
            for b in v.baselines {
                lines.append("  \(q("baseline:" + b)) [shape=note, label=\(q("drift baseline\n" + (b as NSString).lastPathComponent))];")
                lines.append("  \(q("baseline:" + b)) -> \(q("view:" + v.name)) [style=dashed];")
            }
        }
        if online { lines.append("  \(q("online")) [shape=cylinder, label=\(q("Redis (online)"))];") }
        if offline { lines.append("  \(q("offline")) [shape=folder, label=\(q("offline log (Parquet)"))];") }
        lines.append("}")
        return lines.joined(separator: "\n")
    }
}
