import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import TesseraCore
import TesseraEngine
import TesseraOnline
import TesseraRedis

/// The worker's operations endpoints: `GET /metrics` (Prometheus text format), `GET /health`
/// (200 while the worker loop runs; 503 once it stopped or hangs) and `GET /ready` (200 once it
/// joined its group, restored its partitions and caught up within the lag bound, and waits on
/// nothing; else 503 with the reason).
func operationsServer(host: String, port: Int, registry: PrometheusCollectorRegistry, health: WorkerHealth, logger: Logger) -> some Service {
    let router = Router()
    router.get("metrics") { _, _ -> Response in
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
    router.get("health") { _, _ -> Response in
        let live = health.isLive
        return jsonResponse(live ? .ok : .serviceUnavailable, "{\"status\":\"\(live ? "ok" : "stopped")\"}")
    }
    router.get("ready") { _, _ -> Response in
        let s = health.snapshot
        let ready = health.isReady
        var reason = "ready"
        if !ready {
            if !health.isLive { reason = "the worker is not running" }
            else if !s.joined { reason = "joining the consumer group" }
            else if let r = s.retrying { reason = "retrying: \(r)" }
            else { reason = "catching up: lag \(s.lag) > \(health.readyLag)" }
        }
        return jsonResponse(ready ? .ok : .serviceUnavailable,
                            "{\"ready\":\(ready),\"reason\":\(JSONText.quoted(reason)),\"partitions\":\(s.partitions),\"lag\":\(s.lag)}")
    }
    // A connection that sends or receives nothing for 10 s is closed: an incomplete request cannot hold one open.
    return Application(router: router, server: .http1(configuration: .init(idleTimeout: .seconds(10))),
                       configuration: .init(address: .hostname(host, port: port), serverName: "tessera"), logger: logger)
}

func jsonResponse(_ status: HTTPResponse.Status, _ body: String) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
}

/// `tessera serve`: online lookups over HTTP in Feast's request and response shapes.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve online features over HTTP: POST /get-online-features with Feast's request and response shapes.",
        discussion: """
            Request: {"features": ["VIEW:FEATURE", …], "entities": {"JOIN_KEY": [values…]}, "full_feature_names": false}. \
            Or {"feature_service": "VIEW", "entities": {…}}: each online view is a feature service with all its \
            features (the ones `tessera feast-repo` generates). Response: {"metadata": {"feature_names": […]}, \
            "results": [{"values": […], "statuses": […], "event_timestamps": […]}, …]}, one result per column (join \
            keys first). Statuses: PRESENT, NOT_FOUND (no row, or the feature is null). As Feast's feature server \
            over its Redis store, a row is served until Redis expires it (between the view's TTL and 1.1 × TTL after \
            its last write); with --max-age-status a row older than the TTL is marked OUTSIDE_MAX_AGE. Reads both \
            online layouts (Tessera's and Feast's). GET /health answers 200 while Redis answers.
            """)

    @Option(name: .customLong("topology"), help: "Topology files or directories (repeatable).")
    var topologies: [String] = []
    @Option(help: "Redis URL, redis://HOST:PORT[/DB].") var redis: String?
    @Option(help: "Redis key prefix (default tessera:).") var keyPrefix: String?
    @Option(help: "Address to bind (default 127.0.0.1).") var host: String?
    @Option(help: "Port (default 6566, as Feast's feature server).") var port: Int?
    @Option(help: "Redis connections at most, shared by concurrent requests (default 4).") var connections: Int?
    @Flag(help: "Mark rows older than their view's TTL OUTSIDE_MAX_AGE (Feast's Redis store does not).") var maxAgeStatus = false

    func run() async throws {
        endProcessOnFatalSignals()
        let logger = makeLogger("tessera-serve")
        let paths = topologies.isEmpty ? (setting(nil, "topology").map { $0.split(separator: ",").map(String.init) } ?? []) : topologies
        guard !paths.isEmpty else { throw ValidationError("missing --topology") }
        let lookup = OnlineLookup(topologies: try loadTopologies(paths), layout: OnlineLayout(prefix: setting(keyPrefix, "key-prefix") ?? "tessera:"),
                                  maxAgeStatus: { var settings = Settings(); return settings.isOn(maxAgeStatus, "max-age-status") }())
        let endpoint = try RedisEndpoint(url: try required(redis, "redis"), environment: ProcessInfo.processInfo.environment)
        let pool = RedisPool(endpoint: endpoint, size: connections ?? 4, logger: logger)
        let clock = SystemClock()
        let router = Router()
        router.post("get-online-features") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            let bytes = Array(body.readableBytesView)
            let now = clock.now()
            do {
                let answer = try await pool.with { try lookup.respond(to: bytes, connection: $0, now: now) }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer)))
            } catch let e as OnlineLookup.RequestError {
                return jsonResponse(.badRequest, "{\"error\":\(JSONText.quoted(e.description))}")
            } catch {
                logger.error("lookup failed: \(error)")
                return jsonResponse(.serviceUnavailable, "{\"error\":\(JSONText.quoted("\(error)"))}")
            }
        }
        router.get("health") { _, _ -> Response in
            let ok = (try? await pool.with { _ = try $0.command(["PING"]) }) != nil
            return jsonResponse(ok ? .ok : .serviceUnavailable, "{\"status\":\"\(ok ? "ok" : "Redis unreachable")\"}")
        }
        let host = setting(host, "host") ?? "127.0.0.1", port = setting(port.map(String.init), "port").flatMap(Int.init) ?? 6566
        let app = Application(router: router, server: .http1(configuration: .init(idleTimeout: .seconds(10))),  // as the worker's
                              configuration: .init(address: .hostname(host, port: port), serverName: "tessera"), logger: logger)
        logger.info("serving online features", metadata: ["address": "http://\(host):\(port)/get-online-features", "redis": "\(endpoint)"])
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
