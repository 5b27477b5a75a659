import ArgumentParser
import Foundation
import TesseraCore
import TesseraEngine
import TesseraLog
import TesseraOffline
import TesseraRegistry
import TesseraTopology
import TesseraTraining

/// `tessera stats`: a running worker's feature statistics and drift, and drift baselines.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Feature statistics and drift of a running worker's views; `stats baseline` builds a drift baseline.",
        subcommands: [StatsShow.self, StatsBaseline.self], defaultSubcommand: StatsShow.self)
}

/// `tessera stats [show] --view V`: reads a worker's /metrics and prints the view's statistics.
struct StatsShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a view's feature statistics and drift, read from a running worker's /metrics.",
        discussion: """
            For each feature, over the view's rolling window (its quality window of event time, \
            `rolling`) and since the worker got its partitions (`all`): rows, null share, min, mean, \
            standard deviation, quantiles (within 0.4 % of the exact value) and max; with a baseline, \
            PSI and the KS gap of the rolling window against it; with a freshness target, the share \
            of rows written to Redis within it. A worker answers for the partitions it holds.
            """)

    @Option(help: "The feature view.") var view: String
    @Option(help: "The worker's metrics address, as given by --metrics-port (default http://127.0.0.1:9464).") var metricsURL: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let base = setting(metricsURL, "metrics-url") ?? "http://127.0.0.1:9464"
        let url = base.hasSuffix("/metrics") ? base : base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/metrics"
        let body: [UInt8]
        do {
            let reply = try CurlEasy().get(url, user: nil, password: nil, caFile: nil, timeoutMillis: 5_000)
            guard reply.status == 200 else { throw ValidationError("\(url) answered HTTP \(reply.status)") }
            body = reply.body
        } catch let failure as CurlEasy.Failure {
            throw ValidationError("cannot read \(url): \(failure.message) (is a worker running with --metrics-port?)")
        }
        let report = ViewStatsReport(view: view, metrics: PrometheusText.parse(String(decoding: body, as: UTF8.self)))
        guard !report.features.isEmpty else {
            throw ValidationError("the worker at \(base) has no statistics of view '\(view)' (not one of its views, or none of its partitions assigned yet)")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text, terminator: "")
        }
    }
}

/// Samples of the Prometheus text format: name, labels, value.
enum PrometheusText {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    static func parse(_ text: String) -> [Sample] {
        var out: [Sample] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            var name = "", labels: [String: String] = [:]
            var rest = Substring(line)
            if let brace = line.firstIndex(of: "{") {
                name = String(line[..<brace])
                rest = line[line.index(after: brace)...]
                // key="value", … with \" and \\ escapes, up to the closing brace.
                while let eq = rest.firstIndex(of: "=") {
                    let key = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: ", "))
                    var i = rest.index(after: eq)
                    guard i < rest.endIndex, rest[i] == "\"" else { break }
                    i = rest.index(after: i)
                    var value = ""
                    while i < rest.endIndex, rest[i] != "\"" {
                        if rest[i] == "\\", rest.index(after: i) < rest.endIndex {
                            i = rest.index(after: i)
                            value.append(rest[i] == "n" ? "\n" : rest[i])
                        } else {
                            value.append(rest[i])
                        }
                        i = rest.index(after: i)
                    }
                    labels[key] = value
                    rest = i < rest.endIndex ? rest[rest.index(after: i)...] : ""
                    if rest.hasPrefix("}") { rest = rest.dropFirst(); break }
                }
            } else {
                guard let space = line.firstIndex(of: " ") else { continue }
                name = String(line[..<space])
                rest = line[space...]
            }
            let fields = rest.split(separator: " ")
            guard let first = fields.first else { continue }
            let value: Double? = switch first {
            case "NaN": .nan
            case "+Inf": .infinity
            case "-Inf": -.infinity
            default: Double(first)
            }
            if let value { out.append(Sample(name: name, labels: labels, value: value)) }
        }
        return out
    }
}

/// One view's statistics as `tessera stats` prints them.
struct ViewStatsReport: Encodable {
    struct Window: Encodable {
        var rows: Int
        var nullRatio: Double?
        var min: Double?
        var max: Double?
        var mean: Double?
        var stddev: Double?
        var quantiles: [String: Double]

        enum CodingKeys: String, CodingKey {
            case rows, min, max, mean, stddev, quantiles
            case nullRatio = "null_ratio"
        }
    }

    struct FeatureStats: Encodable {
        var rolling: Window?
        var all: Window?
        var psi: Double?
        var ks: Double?
    }

    struct Freshness: Encodable {
        var targetSeconds: Double?
        var rows: Int
        var withinTarget: Int?

        enum CodingKeys: String, CodingKey {
            case rows
            case targetSeconds = "target_seconds"
            case withinTarget = "within_target"
        }
    }

    var view: String
    var features: [String: FeatureStats] = [:]
    var psiThreshold: Double?
    var ksThreshold: Double?
    var freshness: Freshness?

    enum CodingKeys: String, CodingKey {
        case view, features, freshness
        case psiThreshold = "psi_threshold"
        case ksThreshold = "ks_threshold"
    }

    init(view: String, metrics: [PrometheusText.Sample]) {
        self.view = view
        func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }
        var windows: [String: [String: Window]] = [:]
        var freshRows = 0, within: Int?, target: Double?
        for s in metrics where s.labels["view"] == view {
            if let feature = s.labels["feature"] {
                if let window = s.labels["window"] {
                    var w = windows[feature, default: [:]][window] ?? Window(rows: 0, quantiles: [:])
                    switch s.name {
                    case MetricName.featureRows: w.rows = Int(s.value)
                    case MetricName.featureNullRatio: w.nullRatio = finite(s.value)
                    case MetricName.featureMin: w.min = finite(s.value)
                    case MetricName.featureMax: w.max = finite(s.value)
                    case MetricName.featureMean: w.mean = finite(s.value)
                    case MetricName.featureStddev: w.stddev = finite(s.value)
                    case MetricName.featureQuantile: if let q = s.labels["quantile"], s.value.isFinite { w.quantiles[q] = s.value }
                    default: continue
                    }
                    windows[feature, default: [:]][window] = w
                } else if s.name == MetricName.featurePSI {
                    features[feature, default: FeatureStats()].psi = finite(s.value)
                } else if s.name == MetricName.featureKS {
                    features[feature, default: FeatureStats()].ks = finite(s.value)
                }
                continue
            }
            switch s.name {
            case MetricName.psiThreshold: psiThreshold = s.value
            case MetricName.ksThreshold: ksThreshold = s.value
            case MetricName.freshnessTarget: target = s.value
            case MetricName.freshnessRows: freshRows = Int(s.value)
            case MetricName.freshnessWithinTarget: within = Int(s.value)
            default: break
            }
        }
        for (feature, w) in windows {
            features[feature, default: FeatureStats()].rolling = w["rolling"]
            features[feature, default: FeatureStats()].all = w["all"]
        }
        if freshRows > 0 || target != nil { freshness = Freshness(targetSeconds: target, rows: freshRows, withinTarget: within) }
    }

    var text: String {
        func n(_ x: Double?) -> String {
            guard let x else { return "-" }
            return x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(format: "%.4g", x)
        }
        var out = "view \(view): statistics of its rows (rolling: the quality window of event time; all: since assigned)\n"
        let header = ["feature", "window", "rows", "null %", "min", "mean", "stddev", "p50", "p90", "p99", "max", "psi", "ks"]
        var rows = [header]
        for name in features.keys.sorted() {
            let f = features[name]!
            for (label, w) in [("rolling", f.rolling), ("all", f.all)] {
                guard let w else { continue }
                rows.append([name, label, String(w.rows), w.nullRatio.map { String(format: "%.2f", $0 * 100) } ?? "-",
                             n(w.min), n(w.mean), n(w.stddev), n(w.quantiles["0.5"]), n(w.quantiles["0.9"]), n(w.quantiles["0.99"]), n(w.max),
                             label == "rolling" ? n(f.psi.map { ($0 * 1000).rounded() / 1000 }) : "",
                             label == "rolling" ? n(f.ks.map { ($0 * 1000).rounded() / 1000 }) : ""])
            }
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max()! }
        for r in rows {
            out += r.enumerated().map { c, cell in c < 2 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell }.joined(separator: "  ") + "\n"
        }
        if let t = psiThreshold { out += "drift thresholds: psi \(n(t)), ks \(n(ksThreshold))\n" }
        if let f = freshness {
            out += "freshness: \(f.rows) rows written to Redis"
            if let t = f.targetSeconds, let w = f.withinTarget {
                out += ", \(f.rows > 0 ? String(format: "%.2f", Double(w) / Double(f.rows) * 100) : "-") % within the target of \(n(t)) s"
            }
            out += "\n"
        }
        return out
    }
}

/// `tessera stats baseline`: a view's drift baseline from data the user trusts.
struct StatsBaseline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline",
        abstract: "Build a view's drift baseline from its offline log over a time range, or from a training-set file.",
        discussion: """
            Per feature: quantile bins of its values (--bins, fewer where values repeat), the share of \
            values in each and the share of nulls, as JSON. Name the file in the view's `quality:` \
            block (`baseline: FILE`); the worker then exports PSI and the KS gap of each feature's \
            rolling window against it. From the offline log, rows with an event time in \
            [--from, --to); from a training set (`tessera historical`'s output, Parquet or CSV), \
            every row of the columns named FEATURE or VIEW__FEATURE.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories (default: topologies).") var topologies: [String] = []
    @Option(help: "The feature view.") var view: String
    @Option(help: "Directory of the offline log.") var offlineDir: String?
    @Option(help: "Earliest event time (RFC 3339), with --offline-dir.") var from: String?
    @Option(help: "Event times before this (RFC 3339), with --offline-dir.") var to: String?
    @Option(help: "A training-set file (.parquet or .csv) instead of the offline log.") var trainingSet: String?
    @Option(help: "Bins per feature.") var bins = 10
    @Option(help: "Where to write the baseline (JSON).") var out: String

    func validate() throws {
        if bins < 2 || bins > 100 { throw ValidationError("--bins takes 2 to 100") }
        if trainingSet != nil && (offlineDir != nil || from != nil || to != nil) {
            throw ValidationError("--training-set excludes --offline-dir, --from and --to")
        }
    }

    func run() throws {
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { [$0] } ?? ["topologies"]) : topologies
        guard let v = try loadTopologies(paths).flatMap(\.views).first(where: { $0.name == view }) else {
            throw ValidationError("no feature view '\(view)' in \(paths.joined(separator: ", "))")
        }
        let numeric = v.spec.features.map { v.spec.outputType(of: $0) != .string }
        var values: [[Double?]] = Array(repeating: [], count: v.features.count)
        var described: String
        if let trainingSet {
            let frame = try Frame.read(path: trainingSet)
            for (f, feature) in v.features.enumerated() {
                guard let c = frame.index(of: feature.name) ?? frame.index(of: "\(v.name)__\(feature.name)") else {
                    throw ValidationError("\(trainingSet) has no column \(feature.name) or \(v.name)__\(feature.name)")
                }
                values[f] = (0..<frame.rowCount).map { Self.value(frame.columns[c], $0, numeric: numeric[f]) }
            }
            described = "training set \(trainingSet)"
        } else {
            let directory = try required(offlineDir, "offline-dir")
            guard let fromText = from, let start = RFC3339.parse(fromText), let toText = to, let end = RFC3339.parse(toText), start < end else {
                throw ValidationError("--from and --to take RFC 3339 times (2026-12-01T00:00:00Z), --from before --to")
            }
            let files = OfflineLog.files(directory: directory, view: v.name)
            if files.isEmpty { throw ValidationError("no offline files of view '\(v.name)' in \(directory)") }
            for file in files {
                let reader = try ParquetFileReader(path: file)
                let names = reader.schema.fields.map(\.name)
                guard let t = names.firstIndex(of: "event_timestamp") else { throw ValidationError("\(file) has no event_timestamp column") }
                let wanted = v.features.map { names.firstIndex(of: $0.name) }
                let columns = try reader.readAll()
                let rows = (0..<columns[t].count).filter { columns[t].ints[$0] >= start && columns[t].ints[$0] < end }
                for f in v.features.indices {
                    // A file from before the feature was added: its rows had no value of it.
                    guard let c = wanted[f] else { values[f] += Array(repeating: nil, count: rows.count); continue }
                    values[f] += rows.map { Self.value(columns[c], $0, numeric: numeric[f]) }
                }
            }
            described = "offline log \(directory), event time [\(fromText), \(toText))"
        }
        let rows = values.first?.count ?? 0
        if rows == 0 { throw ValidationError("no rows of view '\(v.name)' in \(described)") }
        let baseline = DriftBaseline.build(
            view: v.name, source: described,
            features: v.features.indices.map { f in
                (v.features[f].name, numeric[f] ? values[f] : nil, values[f].filter { $0 == nil }.count, values[f].count)
            },
            bins: bins)
        try baseline.json().write(to: URL(fileURLWithPath: out), options: .atomic)
        print("baseline of view \(v.name): \(rows) rows of \(described), \(v.features.count) features → \(out)")
    }

    /// Row `i` of a column as a number (text parsed as one, as in a CSV file), nil for a null;
    /// for a text feature, 0 for any value.
    static func value(_ c: Column, _ i: Int, numeric: Bool) -> Double? {
        guard c.validity[i] else { return nil }
        if !numeric { return 0 }
        switch c.type {
        case .int64, .bool: return Double(c.ints[i])
        case .float64: return c.doubles[i]
        case .string:
            let s = c.string(at: i)
            return s.isEmpty ? nil : Double(s) ?? (s == "true" ? 1 : s == "false" ? 0 : nil)
        }
    }
}
