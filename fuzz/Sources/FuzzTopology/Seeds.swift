import Foundation
import TesseraCore
import TesseraTopology

/// Seed files beyond the shipped topologies (scripts/fuzz.sh copies topologies/*.yaml too): one
/// small valid file and one using every aggregate, window form and `where` construct.
func topologySeeds() -> [(name: String, bytes: [UInt8])] {
    let small = """
    team: t
    sources:
      - name: s
        topic: s
        format: json
        timestamp: {field: ts, unit: ms}
        fields: {k: int64, x: float64, c: string, b: bool}
    entities:
      - {name: e, join_keys: {k: int64}}
    feature_views:
      - name: v
        entities: [e]
        source: s
        features:
          - {name: n, aggregate: count, window: 1h}
    """
    var features: [String] = []
    for (i, aggregate) in Aggregate.allCases.enumerated() {
        let field = aggregate.fieldRequirement == .optional ? "" : ", field: x"
        let percentile = aggregate == .approxPercentile ? ", percentile: 0.5" : ""
        let window = ["1h", "7d", "lifetime", "500ms", "90s"][i % 5]
        let hop = window == "90s" ? ", hop: 30s" : (window == "500ms" ? ", hop: 100ms" : "")
        features.append("      - {name: f\(i), aggregate: \(aggregate.rawValue)\(field)\(percentile), window: \(window)\(hop)}")
    }
    features.append(#"      - {name: w, aggregate: count, window: 1d, where: 'not (c in ["a", "b"]) and (x >= -1.5e3 or b == true) and c != null'}"#)
    let every = small.replacingOccurrences(of: "      - {name: n, aggregate: count, window: 1h}", with: features.joined(separator: "\n"))
    return [("small.yaml", Array(small.utf8)), ("every-aggregate.yaml", Array(every.utf8))]
}

/// Tokens libFuzzer splices into files: the loader's keys and values, and YAML syntax.
let topologyDictionary: [String] = {
    var tokens = ["team", "owner", "sources", "entities", "feature_views", "name", "topic", "format", "timestamp",
                  "created_timestamp", "allowed_lateness", "fields", "field", "unit", "join_keys", "description", "ttl",
                  "online", "offline", "tags", "features", "aggregate", "window", "hop", "where", "percentile",
                  "key", "key_mismatch", "max_future_skew", "layout", "project", "schema_registry", "url", "descriptor_set",
                  "message", "type", "path", "from", "header"].map { "\($0): " }
    tokens += Aggregate.allCases.map(\.rawValue) + ValueType.allCases.map(\.rawValue) + TimeUnit.allCases.map(\.rawValue)
    tokens += KeyMismatchPolicy.allCases.map(\.rawValue)
    tokens += ["json", "avro", "protobuf", "http://r:8081", "kafka_key", "kafka_timestamp", "a.b.c", "tessera", "feast", "lifetime", "0", "1us", "500ms", "30s", "5m", "1h", "7d", "2w", "3650d", "9223372036854775807d",
               " and ", " or ", "not ", " in ", "==", "!=", "<=", ">=", "null", "true", "false",
               "\n  - ", "\n    ", ": ", "{", "}", "[", "]", ", ", "'", "\"", "\\", "#", "&a ", "*a", "<<: ", "!!str ", "!!map",
               "---\n", "...\n", "|\n", "> ", "? ", "%YAML 1.1\n", "\t", "\u{FEFF}"]
    return tokens
}()
