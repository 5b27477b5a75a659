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
        abstract: "Print the online row of an entity as JSON.",
        discussion: """
            A row stays in Redis until between the view's TTL and 1.1 × TTL after its last write \
            (the worker refreshes a key's expiry at most once per 10 % of the TTL); `tessera serve` \
            reports a row older than the TTL as outside its maximum age.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories.") var topologies: [String] = []
    @Option(help: "Redis URL.") var redis: String?
    @Option(help: "Feature view.") var view: String
    @Option(help: "Entity keys, KEY=VALUE[,KEY=VALUE].") var entity: String
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?

    func run() throws {
        let loaded = try loadTopologies(topologies.isEmpty ? (setting(nil, "topology").map { [$0] } ?? ["topologies"]) : topologies)
        guard let v = loaded.flatMap(\.views).first(where: { $0.name == view }) else {
            throw ValidationError("no feature view \(view) in the topologies")
        }
        var given: [String: String] = [:]
        for pair in entity.split(separator: ",") {
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
        let endpoint = try RedisEndpoint(url: try required(redis, "redis"), environment: ProcessInfo.processInfo.environment)
        let connection = RedisConnection(endpoint: endpoint, logger: makeLogger("tessera-get"))
        let row = try OnlineRow.fetch(view: v, key: values, layout: OnlineLayout(prefix: setting(keyPrefix, "key-prefix") ?? "tessera:"), connection: connection)
        print(row.json(view: v))
        if row.fields.isEmpty { throw ExitCode(1) }
    }
}
