import Foundation
import Testing
import TesseraCore
@testable import TesseraTopology

/// A valid file; each bad case below changes one line of it (or appends lines).
let baseTopology = """
team: growth
sources:
  - name: orders
    topic: orders
    format: json
    timestamp: {field: ts, unit: ms}
    fields:
      user_id: int64
      amount: float64
      status: string
entities:
  - name: user
    join_keys: {user_id: int64}
feature_views:
  - name: stats
    entities: [user]
    source: orders
    features:
      - {name: n, aggregate: count, window: 1h}
"""

struct BadCase: Sendable, CustomStringConvertible {
    var name: String
    /// 1-based line of `baseTopology` to replace, and its replacement (may hold several lines).
    var line: Int
    var text: String
    var at: (line: Int, column: Int)
    var message: String
    var description: String { name }

    func yaml() -> String {
        var lines = baseTopology.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[line - 1] = text
        return lines.joined(separator: "\n")
    }
}

let badCases: [BadCase] = [
    BadCase(name: "YAML syntax", line: 9, text: "      amount: [float64", at: (10, 13), message: "YAML: did not find expected"),
    BadCase(name: "duplicate YAML key", line: 4, text: "    topic: orders\n    topic: other", at: (4, 5), message: "duplicate key 'topic'"),
    BadCase(name: "unknown top-level key", line: 1, text: "team: growth\nversion: 2", at: (2, 1), message: "unknown key 'version' in the topology"),
    BadCase(name: "unknown source key", line: 4, text: "    topik: orders", at: (4, 5), message: "unknown key 'topik' in a source"),
    BadCase(name: "missing topic", line: 4, text: "    # no topic", at: (3, 5), message: "a source is missing 'topic'"),
    BadCase(name: "unsupported format", line: 5, text: "    format: parquet", at: (5, 13), message: "format 'parquet' is not supported"),
    BadCase(name: "avro without a registry", line: 5, text: "    format: avro", at: (5, 13), message: "format avro needs the schema registry its producers use"),
    BadCase(name: "registry URL without a scheme", line: 5, text: "    format: avro\n    schema_registry: {url: registry:8081}", at: (6, 28),
            message: "schema_registry url 'registry:8081' must be http://HOST:PORT or https://HOST:PORT"),
    BadCase(name: "registry URL with credentials", line: 5, text: "    format: avro\n    schema_registry: {url: \"https://u:p@registry:8081\"}", at: (6, 28),
            message: "schema_registry url must not hold credentials"),
    BadCase(name: "protobuf without schemas", line: 5, text: "    format: protobuf", at: (5, 13), message: "or a descriptor set (descriptor_set: FILE and message: NAME)"),
    BadCase(name: "a descriptor set that is not there", line: 5, text: "    format: protobuf\n    descriptor_set: /nonexistent/orders.desc\n    message: shop.Order",
            at: (6, 21), message: "cannot read the descriptor set /nonexistent/orders.desc"),
    BadCase(name: "a descriptor set without its message", line: 5, text: "    format: protobuf\n    descriptor_set: /dev/null", at: (6, 21),
            message: "a descriptor set needs the message type of the payloads"),
    BadCase(name: "a message that is not a name", line: 5, text: "    format: protobuf\n    descriptor_set: /dev/null\n    message: shop..Order", at: (7, 14),
            message: "message 'shop..Order' must be a message's full name"),
    BadCase(name: "a registry and a descriptor set", line: 5, text: "    format: protobuf\n    schema_registry: {url: http://r:8081}\n    descriptor_set: /dev/null\n    message: a.B",
            at: (7, 5), message: "a source reads its schemas from a registry or from a descriptor set, not both"),
    BadCase(name: "a descriptor set for JSON", line: 5, text: "    format: json\n    descriptor_set: /dev/null\n    message: a.B", at: (6, 5),
            message: "descriptor_set applies to format protobuf only"),
    BadCase(name: "registry for JSON", line: 5, text: "    format: json\n    schema_registry: {url: http://registry:8081}", at: (6, 5),
            message: "format json reads no schema registry"),
    BadCase(name: "unknown time unit", line: 6, text: "    timestamp: {field: ts, unit: ns}", at: (6, 34), message: "unit 'ns' is not one of: s, ms, us, rfc3339"),
    BadCase(name: "bad lateness", line: 5, text: "    format: json\n    allowed_lateness: 5 parsecs", at: (6, 23), message: "allowed_lateness '5 parsecs' is not a duration"),
    BadCase(name: "unknown field type", line: 9, text: "      amount: decimal", at: (9, 15), message: "type of 'amount' 'decimal' is not a type"),
    BadCase(name: "float join key", line: 13, text: "    join_keys: {user_id: float64}", at: (13, 17), message: "join key 'user_id' must be int64 or string"),
    BadCase(name: "duplicate entity", line: 13, text: "    join_keys: {user_id: int64}\n  - name: user\n    join_keys: {user_id: int64}", at: (14, 11), message: "entity 'user' is defined twice"),
    BadCase(name: "unknown source in view", line: 17, text: "    source: payments", at: (17, 13), message: "unknown source 'payments'"),
    BadCase(name: "unknown entity in view", line: 16, text: "    entities: [customer]", at: (16, 16), message: "unknown entity 'customer'"),
    BadCase(name: "source cannot key the view", line: 13, text: "    join_keys: {customer_id: int64}", at: (16, 15), message: "source 'orders' cannot key this view: it has no field 'customer_id'"),
    BadCase(name: "join key type differs from the field", line: 13, text: "    join_keys: {user_id: string}", at: (16, 15), message: "field 'user_id' is int64, the join key is string"),
    BadCase(name: "duplicate feature", line: 19, text: "      - {name: n, aggregate: count, window: 1h}\n      - {name: n, aggregate: sum, field: amount, window: 1h}", at: (20, 16), message: "feature 'n' is defined twice"),
    BadCase(name: "unknown aggregate", line: 19, text: "      - {name: n, aggregate: median, field: amount, window: 1h}", at: (19, 30), message: "unknown aggregate 'median'"),
    BadCase(name: "aggregate needs a field", line: 19, text: "      - {name: n, aggregate: sum, window: 1h}", at: (19, 30), message: "sum needs a field"),
    BadCase(name: "unknown field", line: 19, text: "      - {name: n, aggregate: sum, field: price, window: 1h}", at: (19, 42), message: "unknown field 'price'"),
    BadCase(name: "non-numeric field", line: 19, text: "      - {name: n, aggregate: mean, field: status, window: 1h}", at: (19, 43), message: "mean needs a numeric field; 'status' is string"),
    BadCase(name: "window shorter than hop", line: 19, text: "      - {name: n, aggregate: count, window: 10m, hop: 1h}", at: (19, 55), message: "window 10m is shorter than its hop 1h"),
    BadCase(name: "hop does not divide window", line: 19, text: "      - {name: n, aggregate: count, window: 1h, hop: 7m}", at: (19, 54), message: "hop 7m does not divide window 1h"),
    BadCase(name: "too many tiles", line: 19, text: "      - {name: n, aggregate: count, window: 30d, hop: 1s}", at: (19, 55),
            message: "window 30d has 2592000 tiles of hop 1s; at most 1048576 (choose a longer hop)"),
    BadCase(name: "hop on lifetime", line: 19, text: "      - {name: n, aggregate: count, window: lifetime, hop: 1h}", at: (19, 55), message: "a lifetime window has no hop"),
    BadCase(name: "bad window", line: 19, text: "      - {name: n, aggregate: count, window: forever}", at: (19, 45), message: "window 'forever' is not a duration"),
    BadCase(name: "unknown field in where", line: 19, text: "      - {name: n, aggregate: count, window: 1h, where: state == \"paid\"}", at: (19, 56), message: "unknown field 'state' in where"),
    BadCase(name: "where field inside the expression", line: 19, text: "      - {name: n, aggregate: count, window: 1h, where: 'amount > 3 and stat == \"x\"'}", at: (19, 72), message: "unknown field 'stat' in where"),
    BadCase(name: "where type mismatch", line: 19, text: "      - {name: n, aggregate: count, window: 1h, where: amount == \"big\"}", at: (19, 66), message: "'amount' is float64 and cannot be compared with a string"),
    BadCase(name: "where syntax", line: 19, text: "      - {name: n, aggregate: count, window: 1h, where: status = \"paid\"}", at: (19, 63), message: "'=' is not an operator"),
    BadCase(name: "percentile missing", line: 19, text: "      - {name: n, aggregate: approx_percentile, field: amount, window: 1h}", at: (19, 9), message: "approx_percentile needs a percentile"),
    BadCase(name: "percentile out of range", line: 19, text: "      - {name: n, aggregate: approx_percentile, field: amount, window: 1h, percentile: 95}", at: (19, 88), message: "percentile must be a number between 0 and 1"),
    BadCase(name: "online not a boolean", line: 17, text: "    source: orders\n    online: yes please", at: (18, 13), message: "online must be true or false"),
    BadCase(name: "feature name taken by a join key", line: 19, text: "      - {name: user_id, aggregate: count, window: 1h}", at: (19, 16), message: "feature name 'user_id' is taken"),
    BadCase(name: "bad view name", line: 15, text: "  - name: user-stats", at: (15, 11), message: "feature view name 'user-stats' must be a name"),
    BadCase(name: "unknown feature key", line: 19, text: "      - {name: n, aggregate: count, window: 1h, windw: 2h}", at: (19, 49), message: "unknown key 'windw' in a feature"),
    BadCase(name: "source keyed by a field the view does not join on", line: 5, text: "    format: json\n    key: status", at: (17, 15),
            message: "source 'orders' is keyed by 'status', which is not a join key of this view's entities (user)"),
    BadCase(name: "key not a field", line: 5, text: "    format: json\n    key: order_id", at: (6, 10), message: "the key field 'order_id' is not one of the source's fields"),
    BadCase(name: "float key", line: 5, text: "    format: json\n    key: amount", at: (6, 10), message: "the key field 'amount' must be int64 or string, not float64"),
    BadCase(name: "unknown key policy", line: 5, text: "    format: json\n    key_mismatch: ignore", at: (6, 19), message: "key_mismatch 'ignore' is not one of: dead_letter, accept"),
    BadCase(name: "bad future skew", line: 5, text: "    format: json\n    max_future_skew: soon", at: (6, 22), message: "max_future_skew 'soon' is not a duration"),
    BadCase(name: "empty path segment", line: 9, text: "      amount: {type: float64, path: order..amount}", at: (9, 37), message: "path 'order..amount' of 'amount' has an empty segment"),
    BadCase(name: "path into a scalar field", line: 9, text: "      amount: float64\n      price: {type: float64, path: amount.value}", at: (10, 7),
            message: "field 'price' reads amount.value, inside 'amount', which field 'amount' reads as a value"),
    BadCase(name: "two fields at one path", line: 9, text: "      amount: float64\n      price: {type: float64, path: amount}", at: (10, 7), message: "fields 'amount' and 'price' both read amount"),
    BadCase(name: "unknown record field", line: 9, text: "      amount: {type: float64, from: kafka_offset}", at: (9, 37), message: "from 'kafka_offset' is not one of: kafka_key, kafka_timestamp"),
    BadCase(name: "record timestamp not int64", line: 9, text: "      amount: {type: float64, from: kafka_timestamp}", at: (9, 37), message: "'amount' must be int64"),
    BadCase(name: "record key as a bool", line: 9, text: "      amount: {type: bool, from: kafka_key}", at: (9, 34), message: "'amount' must be string or int64"),
    BadCase(name: "path and header together", line: 9, text: "      amount: {type: float64, path: a.b, header: h}", at: (9, 42), message: "field 'amount' takes one of path, from and header, not path and header"),
    BadCase(name: "unknown key of a field", line: 9, text: "      amount: {type: float64, nullable: true}", at: (9, 31), message: "unknown key 'nullable' in field 'amount'"),
    BadCase(name: "unknown online layout", line: 1, text: "team: growth\nonline: {layout: hopsworks}", at: (2, 18), message: "online layout 'hopsworks' is not one of: tessera, feast"),
    BadCase(name: "feast layout without a project", line: 1, text: "team: growth\nonline: {layout: feast}", at: (2, 9), message: "the feast layout needs the Feast project"),
    BadCase(name: "a project Feast refuses", line: 1, text: "team: growth\nonline: {layout: feast, project: my-shop}", at: (2, 34), message: "Feast project 'my-shop' must be letters, digits and '_'"),
    BadCase(name: "a project with Tessera's layout", line: 1, text: "team: growth\nonline: {layout: tessera, project: shop}", at: (2, 27), message: "online project applies to the feast layout only"),
    BadCase(name: "feature without window", line: 19, text: "      - {name: n, aggregate: count}", at: (19, 9), message: "a feature is missing 'window'"),
]

@Suite("Topology files")
struct TopologyErrorTests {
    @Test("the base file is valid")
    func baseIsValid() throws {
        let t = try TopologyLoader.parse(yaml: baseTopology, file: "t.yaml").get()
        #expect(t.views[0].spec.features.count == 1)
    }

    @Test("each bad file is reported at its line and column", arguments: badCases)
    func bad(_ c: BadCase) {
        switch TopologyLoader.parse(yaml: c.yaml(), file: "bad.yaml") {
        case .success:
            Issue.record("\(c.name): accepted")
        case .failure(let e):
            let hit = e.errors.first { $0.message.contains(c.message) }
            #expect(hit != nil, "\(c.name): expected “\(c.message)”, got \(e.errors.map(\.description))")
            if let hit {
                #expect(hit.line == c.at.line && hit.column == c.at.column, "\(c.name): at \(hit.line):\(hit.column), expected \(c.at.line):\(c.at.column): \(hit.message)")
                #expect(hit.description.hasPrefix("bad.yaml:\(hit.line):\(hit.column): "))
            }
        }
    }

    @Test("a source is keyed by the join key its views share, or says which; views no key routes are refused")
    func sourceKey() throws {
        let base = try TopologyLoader.parse(yaml: baseTopology, file: "t.yaml").get()
        #expect(base.sources[0].key == "user_id" && base.sources[0].keyMismatch == .deadLetter)
        #expect(base.sources[0].maxFutureSkew == Time.hour)
        let declared = try TopologyLoader.parse(yaml: baseTopology.replacingOccurrences(
            of: "format: json", with: "format: json\n    key: user_id\n    key_mismatch: accept\n    max_future_skew: 10m"), file: "t.yaml").get()
        #expect(declared.sources[0].key == "user_id" && declared.sources[0].keyMismatch == .accept)
        #expect(declared.sources[0].maxFutureSkew == 10 * Time.minute)
        // A second view over the source keyed by another entity: no one record key routes both.
        let split = baseTopology.replacingOccurrences(
            of: "    join_keys: {user_id: int64}", with: "    join_keys: {user_id: int64}\n  - name: state\n    join_keys: {status: string}")
            + "\n  - name: by_status\n    entities: [state]\n    source: orders\n    features:\n      - {name: n, aggregate: count, window: 1h}"
        guard case .failure(let e) = TopologyLoader.parse(yaml: split, file: "t.yaml") else { Issue.record("accepted"); return }
        #expect(e.errors.map(\.description) == ["t.yaml:3:11: the views of source 'orders' (stats, by_status) share no join key, so no record key routes all of them: split them over topics keyed by their entities"])
    }

    @Test("a team's online layout applies to each of its views; Tessera's is the default")
    func onlineLayout() throws {
        #expect(try TopologyLoader.parse(yaml: baseTopology, file: "t.yaml").get().views[0].onlineFormat == .tessera)
        let feast = try TopologyLoader.parse(yaml: baseTopology.replacingOccurrences(of: "team: growth", with: "team: growth\nonline: {layout: feast, project: shop_1}"),
                                             file: "t.yaml").get()
        #expect(feast.online == .feast(project: "shop_1") && feast.views[0].onlineFormat == .feast(project: "shop_1"))
    }

    @Test("fields from the record and at paths: their origins; the record timestamp as event time must be in ms")
    func fieldOrigins() throws {
        let yaml = baseTopology.replacingOccurrences(of: "      amount: float64", with: """
                  amount: {type: float64, path: order.amount}
                  ts: {type: int64, from: kafka_timestamp}
                  k: {type: string, from: kafka_key}
                  region: {type: string, header: x-region}
            """).replacingOccurrences(of: "{field: ts, unit: ms}", with: "{field: ts, unit: UNIT}")
        let source = try TopologyLoader.parse(yaml: yaml.replacingOccurrences(of: "UNIT", with: "ms"), file: "t.yaml").get().sources[0]
        #expect(source.origins == [.payload(["user_id"]), .payload(["order", "amount"]), .recordTimestamp, .recordKey, .header("x-region"), .payload(["status"])])
        guard case .failure(let e) = TopologyLoader.parse(yaml: yaml.replacingOccurrences(of: "UNIT", with: "s"), file: "t.yaml") else { Issue.record("accepted"); return }
        #expect(e.errors.map(\.description) == ["t.yaml:6:16: 'ts' is the record timestamp, in milliseconds: its unit is ms"])
    }

    @Test("every error of a file is reported, not just the first")
    func allErrors() {
        var yaml = baseTopology.replacingOccurrences(of: "format: json", with: "format: avro")
        yaml = yaml.replacingOccurrences(of: "aggregate: count", with: "aggregate: median")
        guard case .failure(let e) = TopologyLoader.parse(yaml: yaml, file: "x.yaml") else { Issue.record("accepted"); return }
        #expect(e.errors.count >= 2)
    }

    @Test("view names are unique across files")
    func crossFile() throws {
        let a = try TopologyLoader.parse(yaml: baseTopology, file: "a.yaml").get()
        var b = a
        b.file = "b.yaml"
        let errors = TopologyLoader.crossCheck([a, b])
        #expect(errors.map(\.description) == ["b.yaml:1:1: feature view 'stats' is also defined in a.yaml; view names are global"])
    }
}
