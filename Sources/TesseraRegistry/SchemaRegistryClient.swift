import Foundation
import Synchronization
import TesseraCore

/// A Confluent-compatible schema registry, read over its REST API: `GET /schemas/ids/{id}` gives
/// the schema registered under an id (`{"schema": "…", "schemaType": "AVRO"}`; no type means
/// Avro). Schemas never change under an id, so each one is fetched once and kept. Credentials and
/// a CA file come from the environment (`TESSERA_SCHEMA_REGISTRY_USERNAME`, `…_PASSWORD` or
/// `…_PASSWORD_FILE`, `…_CA_FILE`), never from argv.
///
/// `@unchecked Sendable`: the cache is behind its mutex, and the curl handle is used only by
/// `fetch`, which callers run on one thread (the worker's).
public final class SchemaRegistryClient: @unchecked Sendable {
    public let url: String
    private let user: String?
    private let password: String?
    private let caFile: String?
    private let timeoutMillis: Int
    private var curl: CurlEasy?
    private let cache = Mutex<[UInt32: Result<Schema, Missing>]>([:])
    private let counters = Mutex(Counters())

    public struct Schema: Sendable, Hashable {
        /// AVRO, PROTOBUF or JSON.
        public var type: String
        /// Avro's JSON; for Protobuf the serialized `FileDescriptorProto`, base64 (`format=serialized`).
        public var text: String
        /// Protobuf: the schemas of the files it imports, and theirs, in the same form.
        public var references: [String] = []
    }

    /// The registry answered that it has no schema under the id (a permanent answer).
    public struct Missing: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// The registry could not be asked, or answered with a server error: retry later.
    public struct Unreachable: TesseraError {
        public var message: String
        public var description: String { message }
        public var code: ErrorCode { .registryUnreachable }
        public var isRetriable: Bool { true }
        public var remedy: String? { "Retried with backoff while the worker stops consuming; check that the schema registry is up and reachable" }
    }

    public struct Counters: Sendable {
        public var fetched = 0
        public var missing = 0
        public var failures = 0
        public init() {}
    }

    public init(url: String, environment: [String: String], timeoutMillis: Int = 5_000) throws {
        self.url = url
        self.timeoutMillis = timeoutMillis
        user = environment["TESSERA_SCHEMA_REGISTRY_USERNAME"]
        if let p = environment["TESSERA_SCHEMA_REGISTRY_PASSWORD"] {
            password = p
        } else if let file = environment["TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw Unreachable(message: "cannot read TESSERA_SCHEMA_REGISTRY_PASSWORD_FILE (\(file))")
            }
            password = text.trimmingCharacters(in: .newlines)
        } else {
            password = nil
        }
        caFile = environment["TESSERA_SCHEMA_REGISTRY_CA_FILE"]
    }

    /// The schema under `id`, if it was fetched (or found missing).
    public func cached(_ id: UInt32) -> Result<Schema, Missing>? { cache.withLock { $0[id] } }

    public var stats: Counters { counters.withLock { $0 } }
    public var cachedCount: Int { cache.withLock { $0.count } }

    /// Fetches the schemas of `ids` not fetched yet. Throws `Unreachable` when the registry does
    /// not answer (or answers 5xx): what was fetched before the failure is kept.
    public func fetch(_ ids: some Sequence<UInt32>) throws(Unreachable) {
        for id in ids where cached(id) == nil {
            let result = try request(id)
            cache.withLock { $0[id] = result }
            counters.withLock {
                if case .success = result { $0.fetched += 1 } else { $0.missing += 1 }
            }
        }
    }

    /// The schema under `id`, with the schemas it references (Protobuf imports), all in the
    /// serialized form (`format=serialized`: Protobuf descriptors rather than .proto text).
    private func request(_ id: UInt32) throws(Unreachable) -> Result<Schema, Missing> {
        guard case .found(let object) = try get("/schemas/ids/\(id)?format=serialized", what: "schema \(id)") else {
            return .failure(Missing(description: "the registry has no schema \(id)"))
        }
        guard let text = object["schema"] as? String else {
            return .failure(Missing(description: "the registry's answer for schema \(id) holds no schema"))
        }
        var schema = Schema(type: object["schemaType"] as? String ?? "AVRO", text: text)
        // References, depth first, each file once.
        var pending = object["references"] as? [[String: Any]] ?? []
        var seen = Set<String>()
        while let reference = pending.popLast() {
            guard let subject = reference["subject"] as? String, let version = reference["version"] as? Int,
                  seen.insert("\(subject)/\(version)").inserted else { continue }
            let path = "/subjects/\(subject.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? subject)/versions/\(version)?format=serialized"
            guard case .found(let referenced) = try get(path, what: "schema \(id)'s reference \(subject) v\(version)"),
                  let text = referenced["schema"] as? String else {
                return .failure(Missing(description: "the registry has no \(subject) version \(version), which schema \(id) references"))
            }
            schema.references.append(text)
            pending += referenced["references"] as? [[String: Any]] ?? []
        }
        return .success(schema)
    }

    private enum Answer { case found([String: Any]), missing }

    private func get(_ path: String, what: String) throws(Unreachable) -> Answer {
        let answer: (status: Int, body: [UInt8])
        do {
            if curl == nil { curl = try CurlEasy() }
            answer = try curl!.get(url + path, user: user, password: password, caFile: caFile, timeoutMillis: timeoutMillis)
        } catch {
            counters.withLock { $0.failures += 1 }
            throw Unreachable(message: "schema registry \(url): \(error.message)")
        }
        switch answer.status {
        case 200:
            guard let object = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any] else { return .found([:]) }
            return .found(object)
        case 404:
            return .missing
        case 401, 403:
            counters.withLock { $0.failures += 1 }
            throw Unreachable(message: "schema registry \(url) refused the credentials (HTTP \(answer.status)); set TESSERA_SCHEMA_REGISTRY_USERNAME and _PASSWORD")
        default:
            counters.withLock { $0.failures += 1 }
            throw Unreachable(message: "schema registry \(url) answered HTTP \(answer.status) for \(what)")
        }
    }
}

extension ErrorCode {
    public static let registryUnreachable = ErrorCode("registry.unreachable")
}
