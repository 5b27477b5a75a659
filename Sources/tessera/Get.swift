import ArgumentParser
import Foundation
import TesseraCore
import TesseraEngine
import TesseraOnline
import TesseraRedis
import TesseraTopology

/// `tessera get`: one online row as JSON, read from Redis the way serving would.
struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the online row of an entity as JSON (one line per --entity).",
        discussion: """
            Reads the row in its topology's layout (Tessera's or Feast's). A row stays in Redis until \
            between the view's TTL and 1.1 × TTL after its last write (the worker refreshes a key's \
            expiry at most once per 10 % of the TTL; in Feast's layout, a hash shared by several views \
            keeps the longest expiry among them); `tessera serve --max-age-status` reports a row older \
            than the TTL as outside its maximum age. Exit status 1 when an entity has no row.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories.") var topologies: [String] = []
    @Option(help: "Redis URL.") var redis: String?
    @Option(help: "Feature view.") var view: String
    @Option(help: "Entity keys, KEY=VALUE[,KEY=VALUE] (repeatable: one line each, read in one round trip).") var entity: [String]
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?

    func run() throws {
        let loaded = try loadTopologies(topologies.isEmpty ? (setting(nil, "topology").map { [$0] } ?? ["topologies"]) : topologies)
        guard let v = loaded.flatMap(\.views).first(where: { $0.name == view }) else {
            throw ValidationError("no feature view \(view) in the topologies")
        }
        var keys: [[Value]] = []
        for text in entity {
            var given: [String: String] = [:]
            for pair in text.split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { throw ValidationError("--entity takes KEY=VALUE, got \(pair)") }
                given[String(parts[0])] = String(parts[1])
            }
            var values: [Value] = []
            for (name, type) in v.joinKeys {
                guard let text = given[name] else { throw ValidationError("--entity needs \(name)") }
                guard let value = OnlineLayout.parse(text, as: type) else { throw ValidationError("\(name) must be \(type.rawValue)") }
                values.append(value)
            }
            keys.append(values)
        }
        guard !keys.isEmpty else { throw ValidationError("missing --entity") }
        let endpoint = try RedisEndpoint(url: try required(redis, "redis"), environment: ProcessInfo.processInfo.environment)
        let connection = RedisConnection(endpoint: endpoint, logger: makeLogger("tessera-get"))
        let layout = OnlineLayout(prefix: setting(keyPrefix, "key-prefix") ?? "tessera:")
        var pipeline = RESPBuffer()
        for key in keys { layout.appendRead(v, key: key, to: &pipeline) }
        var missing = false
        for (key, reply) in zip(keys, try connection.send(pipeline)) {
            let row = try OnlineRow(view: v, key: key, layout: layout, reply: reply)
            print(row.json(view: v))
            missing = missing || row.fields.isEmpty
        }
        if missing { throw ExitCode(1) }
    }
}
