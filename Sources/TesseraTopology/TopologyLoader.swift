import Foundation
import TesseraCore
import Yams

/// Reads topology files into validated `Topology` values, or reports every problem as
/// `FILE:LINE:COLUMN: message`. Unknown keys are errors, never ignored.
public enum TopologyLoader {
    /// Loads and cross-checks several files (view names must be unique across all of them).
    public static func load(files: [String]) throws(TopologyErrors) -> [Topology] {
        var topologies: [Topology] = []
        var errors: [TopologyError] = []
        for file in files {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                errors.append(TopologyError(file: file, line: 1, column: 1, message: "cannot read the file"))
                continue
            }
            switch parse(yaml: text, file: file) {
            case .success(let t): topologies.append(t)
            case .failure(let e): errors += e.errors
            }
        }
        errors += crossCheck(topologies)
        guard errors.isEmpty else { throw TopologyErrors(errors: errors) }
        return topologies
    }

    /// Problems that only show across files: a view name used twice.
    static func crossCheck(_ topologies: [Topology]) -> [TopologyError] {
        var seen: [String: String] = [:]
        var errors: [TopologyError] = []
        for t in topologies {
            for v in t.views {
                if let other = seen[v.name] {
                    errors.append(TopologyError(file: t.file, line: 1, column: 1, message: "feature view '\(v.name)' is also defined in \(other); view names are global"))
                } else {
                    seen[v.name] = t.file
                }
            }
        }
        return errors
    }

    public static func parse(yaml: String, file: String) -> Result<Topology, TopologyErrors> {
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            return .failure(TopologyErrors(errors: [yamlError(error, file: file)]))
        } catch {
            return .failure(TopologyErrors(errors: [TopologyError(file: file, line: 1, column: 1, message: "\(error)")]))
        }
        var reader = NodeReader(file: file)
        guard let node else {
            reader.fail(at: nil, "the file is empty; expected team, sources, entities and feature_views")
            return .failure(TopologyErrors(errors: reader.errors))
        }
        let topology = reader.topology(node)
        if let topology, reader.errors.isEmpty { return .success(topology) }
        return .failure(TopologyErrors(errors: reader.errors))
    }

    static func yamlError(_ error: YamlError, file: String) -> TopologyError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return TopologyError(file: file, line: mark.line, column: mark.column, message: "YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return TopologyError(file: file, line: context.mark.line, column: context.mark.column,
                                 message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", "))")
        default:
            return TopologyError(file: file, line: 1, column: 1, message: "YAML: \(error)")
        }
    }
}

/// Walks the YAML tree, collecting errors instead of stopping at the first.
struct NodeReader {
    let file: String
    var errors: [TopologyError] = []
    /// Sources and entities that were declared but are invalid (already reported).
    var broken: Set<String> = []

    init(file: String) { self.file = file }

    mutating func fail(at node: Node?, _ message: String, columnOffset: Int = 0) {
        let mark = node?.mark
        errors.append(TopologyError(file: file, line: mark?.line ?? 1, column: (mark?.column ?? 1) + columnOffset, message: message))
    }

    /// A mapping's entries by key, after checking for unknown and missing keys.
    mutating func mapping(_ node: Node, _ what: String, allowed: [String], required: [String]) -> [String: (key: Node, value: Node)]? {
        guard case .mapping(let m) = node else {
            fail(at: node, "\(what) must be a mapping with keys \(allowed.joined(separator: ", "))")
            return nil
        }
        var entries: [String: (key: Node, value: Node)] = [:]
        for (k, v) in m {
            guard let key = k.scalar?.string else { fail(at: k, "keys of \(what) must be plain names"); continue }
            guard allowed.contains(key) else {
                fail(at: k, "unknown key '\(key)' in \(what) (expected one of: \(allowed.joined(separator: ", ")))")
                continue
            }
            entries[key] = (k, v)
        }
        for key in required where entries[key] == nil {
            fail(at: node, "\(what) is missing '\(key)'")
        }
        return entries
    }

    mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let s) = node else {
            fail(at: node, "\(what) must be a string")
            return nil
        }
        if s.style == .plain && (s.string.isEmpty || s.string == "~" || s.string == "null") {
            fail(at: node, "\(what) must not be empty")
            return nil
        }
        return s.string
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }

    mutating func name(_ node: Node, _ what: String) -> String? {
        guard let s = string(node, what) else { return nil }
        guard NodeReader.isName(s) else {
            fail(at: node, "\(what) '\(s)' must be a name: letters, digits and '_', not starting with a digit")
            return nil
        }
        return s
    }

    mutating func bool(_ node: Node, _ what: String) -> Bool? {
        guard case .scalar(let s) = node, s.style == .plain, s.string == "true" || s.string == "false" else {
            fail(at: node, "\(what) must be true or false")
            return nil
        }
        return s.string == "true"
    }

    mutating func duration(_ node: Node, _ what: String, allowZero: Bool = false) -> Micros? {
        guard case .scalar(let s) = node else {
            fail(at: node, "\(what) must be a duration like 30s, 5m, 1h or 7d")
            return nil
        }
        if allowZero && s.string == "0" { return 0 }
        guard let d = Time.parse(duration: s.string) else {
            fail(at: node, "\(what) '\(s.string)' is not a duration; write it like 500ms, 30s, 5m, 1h or 7d")
            return nil
        }
        if d == 0 && !allowZero {
            fail(at: node, "\(what) must be longer than 0")
            return nil
        }
        return d
    }

    mutating func sequence(_ node: Node, _ what: String) -> [Node]? {
        guard case .sequence(let s) = node else {
            fail(at: node, "\(what) must be a list")
            return nil
        }
        return Array(s)
    }

    mutating func valueType(_ node: Node, _ what: String) -> ValueType? {
        guard let s = string(node, what) else { return nil }
        guard let t = ValueType(rawValue: s) else {
            fail(at: node, "\(what) '\(s)' is not a type (expected one of: \(ValueType.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
        return t
    }

    /// A source's fields: a mapping of names to a type, or to `{type: T, path: a.b}` (a nested
    /// payload field), `{type: T, from: kafka_key | kafka_timestamp}` or `{type: T, header: NAME}`.
    mutating func sourceFields(_ node: Node) -> [(name: String, type: ValueType, origin: FieldOrigin, node: Node)]? {
        guard case .mapping(let m) = node, !m.isEmpty else {
            fail(at: node, "fields must be a mapping of names to types (int64, float64, string, bool) or to {type, path | from | header}")
            return nil
        }
        var out: [(String, ValueType, FieldOrigin, Node)] = []
        for (k, v) in m {
            guard let n = name(k, "field name") else { continue }
            guard case .mapping = v else {
                if let t = valueType(v, "type of '\(n)'") { out.append((n, t, .payload([n]), k)) }
                continue
            }
            guard let e = mapping(v, "field '\(n)'", allowed: ["type", "path", "from", "header"], required: ["type"]),
                  let t = e["type"].flatMap({ valueType($0.value, "type of '\(n)'") }) else { continue }
            let given = ["path", "from", "header"].filter { e[$0] != nil }
            if given.count > 1 {
                fail(at: e[given[1]]!.key, "field '\(n)' takes one of path, from and header, not \(given.joined(separator: " and "))")
                continue
            }
            var origin = FieldOrigin.payload([n])
            if let p = e["path"]?.value {
                guard let text = string(p, "path of '\(n)'") else { continue }
                let segments = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
                guard !segments.contains(where: \.isEmpty) else {
                    fail(at: p, "path '\(text)' of '\(n)' has an empty segment (write it as names joined by '.', like order.amount)")
                    continue
                }
                origin = .payload(segments)
            } else if let f = e["from"]?.value {
                guard let text = string(f, "from of '\(n)'") else { continue }
                switch text {
                case "kafka_key":
                    guard t == .string || t == .int64 else { fail(at: f, "the record key is read as text: '\(n)' must be string or int64, not \(t.rawValue)"); continue }
                    origin = .recordKey
                case "kafka_timestamp":
                    guard t == .int64 else { fail(at: f, "the record timestamp is milliseconds since the epoch: '\(n)' must be int64, not \(t.rawValue)"); continue }
                    origin = .recordTimestamp
                default:
                    fail(at: f, "from '\(text)' is not one of: kafka_key, kafka_timestamp (a header is header: NAME)")
                    continue
                }
            } else if let h = e["header"]?.value {
                guard let text = string(h, "header of '\(n)'") else { continue }
                origin = .header(text)
            }
            out.append((n, t, origin, k))
        }
        // A path cannot go into a field that is itself a value.
        for (name, _, origin, node) in out {
            guard let path = origin.path, path.count > 1 else { continue }
            for (other, _, o, _) in out where other != name {
                if let q = o.path, q.count < path.count, Array(path.prefix(q.count)) == q {
                    fail(at: node, "field '\(name)' reads \(path.joined(separator: ".")), inside '\(q.joined(separator: "."))', which field '\(other)' reads as a value")
                }
            }
        }
        var seenPaths: [[String]: String] = [:]
        for (name, _, origin, node) in out {
            guard let path = origin.path else { continue }
            if let other = seenPaths[path] { fail(at: node, "fields '\(other)' and '\(name)' both read \(path.joined(separator: "."))") }
            seenPaths[path] = name
        }
        return out
    }

    /// A mapping of names to types, in file order.
    mutating func typedNames(_ node: Node, _ what: String) -> [(name: String, type: ValueType, node: Node)]? {
        guard case .mapping(let m) = node, !m.isEmpty else {
            fail(at: node, "\(what) must be a mapping of names to types (int64, float64, string, bool)")
            return nil
        }
        var out: [(String, ValueType, Node)] = []
        for (k, v) in m {
            guard let n = name(k, "\(what) name"), let t = valueType(v, "type of '\(k.scalar?.string ?? "")'") else { continue }
            out.append((n, t, k))
        }
        return out
    }

    // MARK: - The file

    static let topKeys = ["team", "owner", "online", "sources", "entities", "feature_views"]

    mutating func topology(_ node: Node) -> Topology? {
        guard let top = mapping(node, "the topology", allowed: NodeReader.topKeys, required: ["team", "sources", "entities", "feature_views"]) else { return nil }
        let team = top["team"].flatMap { name($0.value, "team") } ?? ""
        let owner = top["owner"].flatMap { string($0.value, "owner") }
        let online = top["online"].map { onlineFormat($0.value) } ?? .tessera

        var sources: [Source] = []
        var sourceNodes: [String: Node] = [:]
        if let list = top["sources"].flatMap({ sequence($0.value, "sources") }) {
            for item in list {
                guard let (source, nameNode) = self.source(item) else { continue }
                if sourceNodes[source.name] != nil {
                    fail(at: nameNode, "source '\(source.name)' is defined twice")
                    continue
                }
                sourceNodes[source.name] = nameNode
                sources.append(source)
            }
        }

        var entities: [Entity] = []
        if let list = top["entities"].flatMap({ sequence($0.value, "entities") }) {
            for item in list {
                guard let (entity, nameNode) = self.entity(item) else { continue }
                if entities.contains(where: { $0.name == entity.name }) {
                    fail(at: nameNode, "entity '\(entity.name)' is defined twice")
                    continue
                }
                entities.append(entity)
            }
        }

        // Names declared by sources and entities that failed validation: views that use them get
        // no second error for it.
        func declared(_ key: String) -> Set<String> {
            guard case .sequence(let items)? = top[key]?.value else { return [] }
            return Set(items.compactMap { item in
                guard case .mapping(let m) = item else { return nil }
                return m.first { $0.key.scalar?.string == "name" }?.value.scalar?.string
            })
        }
        broken = declared("sources").subtracting(sources.map(\.name)).union(declared("entities").subtracting(entities.map(\.name)))

        var views: [FeatureView] = []
        if let list = top["feature_views"].flatMap({ sequence($0.value, "feature_views") }) {
            for item in list {
                guard let (view, nameNode) = self.view(item, sources: sources, entities: entities) else { continue }
                if views.contains(where: { $0.name == view.name }) {
                    fail(at: nameNode, "feature view '\(view.name)' is defined twice")
                    continue
                }
                views.append(view)
            }
        }
        // A source without a declared key is keyed by the one join key all its views share.
        for i in sources.indices where sources[i].key == nil {
            let readers = views.filter { $0.source == sources[i].name }
            guard let first = readers.first else { continue }
            let shared = first.joinKeys.map(\.name).filter { k in readers.allSatisfy { $0.joinKeys.contains { $0.name == k } } }
            if shared.count == 1 {
                sources[i].key = shared[0]
            } else if let node = sourceNodes[sources[i].name] {
                fail(at: node, shared.isEmpty
                     ? "the views of source '\(sources[i].name)' (\(readers.map(\.name).joined(separator: ", "))) share no join key, so no record key routes all of them: split them over topics keyed by their entities"
                     : "source '\(sources[i].name)': say which field the record key carries (key: one of \(shared.joined(separator: ", ")))")
            }
        }
        guard errors.isEmpty, let online else { return nil }
        for i in views.indices { views[i].onlineFormat = online }
        return Topology(file: file, team: team, owner: owner, online: online, sources: sources, entities: entities, views: views)
    }

    /// `online: {layout: tessera}` (the default) or `online: {layout: feast, project: NAME}`.
    mutating func onlineFormat(_ node: Node) -> OnlineFormat? {
        guard let m = mapping(node, "online", allowed: ["layout", "project"], required: ["layout"]) else { return nil }
        guard let layoutNode = m["layout"]?.value, let layout = string(layoutNode, "online layout") else { return nil }
        switch layout {
        case "tessera":
            if let p = m["project"] {
                fail(at: p.key, "online project applies to the feast layout only")
                return nil
            }
            return .tessera
        case "feast":
            guard let projectNode = m["project"]?.value else {
                fail(at: node, "the feast layout needs the Feast project its rows belong to (project: NAME)")
                return nil
            }
            guard let project = string(projectNode, "online project") else { return nil }
            // Feast's own rule for project names: letters, digits and '_', not starting with '_'.
            guard !project.hasPrefix("_"), project.unicodeScalars.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }) else {
                fail(at: projectNode, "Feast project '\(project)' must be letters, digits and '_', not starting with '_'")
                return nil
            }
            return .feast(project: project)
        default:
            fail(at: layoutNode, "online layout '\(layout)' is not one of: tessera, feast")
            return nil
        }
    }

    // MARK: - Sources

    static let sourceKeys = ["name", "topic", "format", "timestamp", "created_timestamp", "allowed_lateness", "fields",
                             "key", "key_mismatch", "max_future_skew", "schema_registry", "descriptor_set", "message"]

    mutating func timeField(_ node: Node, _ what: String) -> TimeField? {
        guard let m = mapping(node, what, allowed: ["field", "unit"], required: ["field", "unit"]) else { return nil }
        guard let field = m["field"].flatMap({ name($0.value, "\(what) field") }) else { return nil }
        guard let unitNode = m["unit"]?.value, let unitText = string(unitNode, "\(what) unit") else { return nil }
        guard let unit = TimeUnit(rawValue: unitText) else {
            fail(at: unitNode, "\(what) unit '\(unitText)' is not one of: s, ms, us, rfc3339")
            return nil
        }
        return TimeField(field: field, unit: unit)
    }

    mutating func source(_ node: Node) -> (Source, Node)? {
        guard let m = mapping(node, "a source", allowed: NodeReader.sourceKeys, required: ["name", "topic", "format", "timestamp", "fields"]) else { return nil }
        let before = errors.count
        let nameNode = m["name"]?.value ?? node
        let name = m["name"].flatMap { self.name($0.value, "source name") }
        let topic = m["topic"].flatMap { string($0.value, "topic") }
        var format: SourceFormat?
        if let f = m["format"]?.value, let text = string(f, "format") {
            format = SourceFormat(rawValue: text)
            if format == nil { fail(at: f, "format '\(text)' is not supported (supported: \(SourceFormat.allCases.map(\.rawValue).joined(separator: ", ")))") }
        }
        let timestamp = m["timestamp"].flatMap { timeField($0.value, "timestamp") }
        let created = m["created_timestamp"].flatMap { timeField($0.value, "created_timestamp") }
        let lateness = m["allowed_lateness"].map { duration($0.value, "allowed_lateness", allowZero: true) } ?? 0
        let skew = m["max_future_skew"].map { duration($0.value, "max_future_skew") } ?? Source.defaultMaxFutureSkew
        var keyMismatch = KeyMismatchPolicy.deadLetter
        if let k = m["key_mismatch"]?.value, let text = string(k, "key_mismatch") {
            if let policy = KeyMismatchPolicy(rawValue: text) { keyMismatch = policy } else {
                fail(at: k, "key_mismatch '\(text)' is not one of: \(KeyMismatchPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        let fields = m["fields"].flatMap { sourceFields($0.value) }
        var key: String?
        if let k = m["key"]?.value, let keyName = self.name(k, "key") {
            key = keyName
            if let fields {
                if let f = fields.first(where: { $0.name == keyName }) {
                    if f.type != .int64 && f.type != .string { fail(at: k, "the key field '\(keyName)' must be int64 or string, not \(f.type.rawValue)") }
                } else {
                    fail(at: k, "the key field '\(keyName)' is not one of the source's fields")
                }
            }
        }
        if let fields {
            var seen = Set<String>()
            for f in fields where !seen.insert(f.name).inserted { fail(at: f.node, "field '\(f.name)' is declared twice") }
            for f in fields where f.name == timestamp?.field && f.type == .bool {
                fail(at: f.node, "the timestamp field '\(f.name)' cannot be a bool")
            }
            if let t = timestamp, let f = fields.first(where: { $0.name == t.field }), f.origin == .recordTimestamp, t.unit != .milliseconds {
                fail(at: m["timestamp"]!.value, "'\(f.name)' is the record timestamp, in milliseconds: its unit is ms")
            }
        }
        var registry: SchemaRegistrySettings?
        if let r = m["schema_registry"] {
            if let settings = mapping(r.value, "schema_registry", allowed: ["url"], required: ["url"]),
               let urlNode = settings["url"]?.value, let url = string(urlNode, "schema_registry url") {
                let lower = url.lowercased()
                if !(lower.hasPrefix("http://") || lower.hasPrefix("https://")) || url.split(separator: "/").count < 2 {
                    fail(at: urlNode, "schema_registry url '\(url)' must be http://HOST:PORT or https://HOST:PORT")
                } else if url.contains("@") {
                    fail(at: urlNode, "schema_registry url must not hold credentials: set TESSERA_SCHEMA_REGISTRY_USERNAME and _PASSWORD")
                } else {
                    registry = SchemaRegistrySettings(url: url.hasSuffix("/") ? String(url.dropLast()) : url)
                }
            }
            if let format, !format.usesRegistry { fail(at: r.key, "format \(format.rawValue) reads no schema registry") }
            if let d = m["descriptor_set"] { fail(at: d.key, "a source reads its schemas from a registry or from a descriptor set, not both") }
        } else if let d = m["descriptor_set"] {
            if format != .protobuf { fail(at: d.key, "descriptor_set applies to format protobuf only") }
        } else if let format, format.usesRegistry, let f = m["format"]?.value {
            fail(at: f, "format \(format.rawValue) needs the schema registry its producers use (schema_registry: {url: http://HOST:PORT})"
                 + (format == .protobuf ? ", or a descriptor set (descriptor_set: FILE and message: NAME)" : ""))
        }
        var descriptorSet: DescriptorSetSettings?
        if let d = m["descriptor_set"]?.value, let path = string(d, "descriptor_set") {
            let directory = (file as NSString).deletingLastPathComponent
            let resolved = path.hasPrefix("/") || directory.isEmpty ? path : "\(directory)/\(path)"
            if !FileManager.default.isReadableFile(atPath: resolved) {
                fail(at: d, "cannot read the descriptor set \(resolved) (write one with protoc --descriptor_set_out=FILE --include_imports)")
            }
            if let msg = m["message"]?.value, let name = string(msg, "message") {
                if name.split(separator: ".", omittingEmptySubsequences: false).contains(where: { !NodeReader.isName(String($0)) }) {
                    fail(at: msg, "message '\(name)' must be a message's full name, like shop.Order")
                } else {
                    descriptorSet = DescriptorSetSettings(path: resolved, message: name)
                }
            } else if m["message"] == nil {
                fail(at: d, "a descriptor set needs the message type of the payloads (message: NAME)")
            }
        } else if let msg = m["message"] {
            fail(at: msg.key, "message applies to a descriptor set (descriptor_set: FILE)")
        }
        guard errors.count == before, let name, let topic, let format, let timestamp, let lateness, let skew, let fields else { return nil }
        return (Source(name: name, topic: topic, format: format, timestamp: timestamp, createdTimestamp: created,
                       allowedLateness: lateness, schema: Schema(fields.map { ($0.name, $0.type) }), origins: fields.map(\.origin),
                       key: key, keyMismatch: keyMismatch, maxFutureSkew: skew, schemaRegistry: registry, descriptorSet: descriptorSet), nameNode)
    }

    // MARK: - Entities

    mutating func entity(_ node: Node) -> (Entity, Node)? {
        guard let m = mapping(node, "an entity", allowed: ["name", "join_keys", "description"], required: ["name", "join_keys"]) else { return nil }
        let before = errors.count
        let nameNode = m["name"]?.value ?? node
        let name = m["name"].flatMap { self.name($0.value, "entity name") }
        let keys = m["join_keys"].flatMap { typedNames($0.value, "join_keys") }
        let description = m["description"].flatMap { string($0.value, "description") }
        for k in keys ?? [] where k.type != .int64 && k.type != .string {
            fail(at: k.node, "join key '\(k.name)' must be int64 or string, not \(k.type.rawValue)")
        }
        guard errors.count == before, let name, let keys else { return nil }
        return (Entity(name: name, joinKeys: keys.map { ($0.name, $0.type) }, description: description), nameNode)
    }

    // MARK: - Feature views

    static let viewKeys = ["name", "entities", "source", "ttl", "online", "offline", "owner", "description", "tags", "features",
                           "freshness_target", "quality"]
    static let reserved: Set<String> = ["event_timestamp", "created_timestamp"]

    mutating func view(_ node: Node, sources: [Source], entities: [Entity]) -> (FeatureView, Node)? {
        guard let m = mapping(node, "a feature view", allowed: NodeReader.viewKeys, required: ["name", "entities", "source", "features"]) else { return nil }
        let before = errors.count
        let nameNode = m["name"]?.value ?? node
        let name = m["name"].flatMap { self.name($0.value, "feature view name") }
        var usesBroken = false

        var source: Source?
        if let s = m["source"]?.value, let sourceName = string(s, "source") {
            source = sources.first { $0.name == sourceName }
            if source == nil && broken.contains(sourceName) {
                usesBroken = true
            } else if source == nil {
                fail(at: s, "unknown source '\(sourceName)'\(sources.isEmpty ? "" : " (defined: \(sources.map(\.name).joined(separator: ", ")))")")
            }
        }

        var viewEntities: [Entity] = []
        if let list = m["entities"].flatMap({ sequence($0.value, "entities") }) {
            if list.isEmpty { fail(at: m["entities"]!.value, "a feature view needs at least one entity") }
            for e in list {
                guard let entityName = string(e, "entity") else { continue }
                guard let entity = entities.first(where: { $0.name == entityName }) else {
                    if broken.contains(entityName) { usesBroken = true; continue }
                    fail(at: e, "unknown entity '\(entityName)'\(entities.isEmpty ? "" : " (defined: \(entities.map(\.name).joined(separator: ", ")))")")
                    continue
                }
                if viewEntities.contains(where: { $0.name == entityName }) { fail(at: e, "entity '\(entityName)' is listed twice"); continue }
                viewEntities.append(entity)
            }
        }
        let joinKeys = viewEntities.flatMap(\.joinKeys)
        // The source must carry every join key, with the same type, to key the view.
        if let source, let entitiesNode = m["entities"]?.value {
            for (keyName, keyType) in joinKeys {
                guard let i = source.schema.index(of: keyName) else {
                    fail(at: entitiesNode, "source '\(source.name)' cannot key this view: it has no field '\(keyName)' (join key of \(viewEntities.first { $0.joinKeys.contains { $0.name == keyName } }!.name))")
                    continue
                }
                if source.schema.types[i] != keyType {
                    fail(at: entitiesNode, "source '\(source.name)' cannot key this view: field '\(keyName)' is \(source.schema.types[i].rawValue), the join key is \(keyType.rawValue)")
                }
            }
        }

        // Kafka partitions by the record key: a view's state is whole on one partition only if
        // the key is one of its join keys.
        if let source, let key = source.key, let entitiesNode = m["entities"]?.value, !joinKeys.isEmpty,
           !joinKeys.contains(where: { $0.name == key }) {
            fail(at: entitiesNode, "source '\(source.name)' is keyed by '\(key)', which is not a join key of this view's entities (\(viewEntities.map(\.name).joined(separator: ", "))): one entity's events would be split across partitions. Key the view by an entity with join key '\(key)', or read these events from a topic keyed by the view's entity")
        }

        let ttl = m["ttl"].map { duration($0.value, "ttl", allowZero: true) } ?? 0
        let online = m["online"].map { bool($0.value, "online") } ?? true
        let offline = m["offline"].map { bool($0.value, "offline") } ?? true
        let owner = m["owner"].flatMap { string($0.value, "owner") }
        let description = m["description"].flatMap { string($0.value, "description") }
        var tags: [(key: String, value: String)] = []
        if let t = m["tags"]?.value {
            if case .mapping(let tm) = t {
                for (k, v) in tm {
                    guard let key = string(k, "tag name"), let value = string(v, "tag '\(k.scalar?.string ?? "")'") else { continue }
                    tags.append((key, value))
                }
            } else {
                fail(at: t, "tags must be a mapping of names to strings")
            }
        }

        var features: [Feature] = []
        var specs: [FeatureSpec] = []
        if let list = m["features"].flatMap({ sequence($0.value, "features") }) {
            if list.isEmpty { fail(at: m["features"]!.value, "a feature view needs at least one feature") }
            for item in list {
                guard let (feature, spec, featureNameNode) = self.feature(item, source: source) else { continue }
                if features.contains(where: { $0.name == feature.name }) {
                    fail(at: featureNameNode, "feature '\(feature.name)' is defined twice in view '\(name ?? "")'")
                    continue
                }
                if joinKeys.contains(where: { $0.name == feature.name }) || NodeReader.reserved.contains(feature.name) {
                    fail(at: featureNameNode, "feature name '\(feature.name)' is taken by a join key or a timestamp column")
                    continue
                }
                features.append(feature)
                specs.append(spec)
            }
        }
        let freshnessTarget = m["freshness_target"].flatMap { duration($0.value, "freshness_target") }
        let quality = m["quality"].map { self.quality($0.value, view: name, features: features) } ?? ViewQuality()
        guard errors.count == before, !usesBroken, let name, let source, let ttl, let online, let offline, !joinKeys.isEmpty else { return nil }
        let spec: ViewSpec
        do {
            spec = try ViewSpec(name: name, schema: source.schema, keyFields: joinKeys.map { source.schema.index(of: $0.name)! }, features: specs)
        } catch {
            fail(at: nameNode, "\(error)")
            return nil
        }
        return (FeatureView(name: name, source: source.name, entities: viewEntities.map(\.name), joinKeys: joinKeys, ttl: ttl,
                            online: online, offline: offline, owner: owner, description: description, tags: tags,
                            features: features, spec: spec, freshnessTarget: freshnessTarget, quality: quality), nameNode)
    }

    static let qualityKeys = ["window", "hop", "baseline", "psi_threshold", "ks_threshold", "min_rows"]

    /// A view's `quality:` block: the statistics' rolling window, a drift baseline and thresholds.
    mutating func quality(_ node: Node, view: String?, features: [Feature]) -> ViewQuality {
        var q = ViewQuality()
        guard let m = mapping(node, "quality", allowed: NodeReader.qualityKeys, required: []) else { return q }
        if let w = m["window"].flatMap({ duration($0.value, "quality window") }) { q.window = w }
        if let h = m["hop"].flatMap({ duration($0.value, "quality hop") }) { q.hop = h }
        if q.hop > q.window || q.window / q.hop > 1_000 {
            fail(at: (m["hop"] ?? m["window"])?.value ?? node, "the quality window must hold between 1 and 1000 hops (window \(Time.format(duration: q.window)), hop \(Time.format(duration: q.hop)))")
        }
        for (key, path) in [("psi_threshold", \ViewQuality.psiThreshold), ("ks_threshold", \ViewQuality.ksThreshold)] {
            guard let v = m[key]?.value else { continue }
            if case .scalar(let s) = v, let x = Double(s.string), x > 0, x.isFinite { q[keyPath: path] = x } else {
                fail(at: v, "\(key) must be a number above 0")
            }
        }
        if let v = m["min_rows"]?.value {
            if case .scalar(let s) = v, let x = Int(s.string), x > 0 { q.minRows = x } else { fail(at: v, "min_rows must be a whole number above 0") }
        }
        if let b = m["baseline"]?.value, let path = string(b, "baseline") {
            let directory = (file as NSString).deletingLastPathComponent
            let resolved = path.hasPrefix("/") || directory.isEmpty ? path : "\(directory)/\(path)"
            q.baselinePath = resolved
            do {
                let baseline = try DriftBaseline.read(path: resolved)
                if let view, baseline.view != view {
                    fail(at: b, "the baseline \(resolved) is of view '\(baseline.view)', not '\(view)'")
                }
                for f in baseline.features where !features.contains(where: { $0.name == f.name }) {
                    fail(at: b, "the baseline \(resolved) has feature '\(f.name)', which view '\(view ?? "")' does not (build it again with tessera stats baseline)")
                }
                for f in baseline.features where f.fractions.count != f.edges.count + 1 || f.edges != f.edges.sorted() {
                    fail(at: b, "the baseline \(resolved) is damaged: feature '\(f.name)' needs one share per bin, and ascending edges")
                }
                q.baseline = baseline
            } catch {
                fail(at: b, "\(error) (write one with tessera stats baseline)")
            }
        }
        return q
    }

    static let featureKeys = ["name", "aggregate", "field", "window", "hop", "where", "percentile", "description"]
    static let longestWindow: Micros = 3_650 * Time.day

    mutating func feature(_ node: Node, source: Source?) -> (Feature, FeatureSpec, Node)? {
        guard let m = mapping(node, "a feature", allowed: NodeReader.featureKeys, required: ["name", "aggregate", "window"]) else { return nil }
        let before = errors.count
        let nameNode = m["name"]?.value ?? node
        let name = m["name"].flatMap { self.name($0.value, "feature name") }
        let description = m["description"].flatMap { string($0.value, "description") }

        var aggregate: Aggregate?
        if let a = m["aggregate"]?.value, let text = string(a, "aggregate") {
            aggregate = Aggregate(rawValue: text)
            if aggregate == nil {
                fail(at: a, "unknown aggregate '\(text)' (expected one of: \(Aggregate.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }

        var field: String?
        var fieldIndex: Int?
        if let f = m["field"]?.value, let text = string(f, "field") {
            field = text
            if let source {
                fieldIndex = source.schema.index(of: text)
                if fieldIndex == nil {
                    fail(at: f, "unknown field '\(text)' (source '\(source.name)' has: \(source.schema.names.joined(separator: ", ")))")
                } else if let aggregate, aggregate.fieldRequirement == .numeric, ![.int64, .float64].contains(source.schema.types[fieldIndex!]) {
                    fail(at: f, "\(aggregate.rawValue) needs a numeric field; '\(text)' is \(source.schema.types[fieldIndex!].rawValue)")
                }
            }
        }
        if let aggregate, field == nil, aggregate.fieldRequirement != .optional {
            fail(at: m["aggregate"]!.value, "\(aggregate.rawValue) needs a field")
        }

        var percentile: Double?
        if let p = m["percentile"]?.value {
            if aggregate != .approxPercentile {
                fail(at: m["percentile"]!.key, "percentile only applies to approx_percentile")
            } else if case .scalar(let s) = p, let v = Double(s.string), v >= 0, v <= 1 {
                percentile = v
            } else {
                fail(at: p, "percentile must be a number between 0 and 1")
            }
        } else if aggregate == .approxPercentile {
            fail(at: node, "approx_percentile needs a percentile between 0 and 1")
        }

        var window: Window?
        if let w = m["window"]?.value, case .scalar(let s) = w, s.string == "lifetime" {
            window = .lifetime
            if let h = m["hop"] { fail(at: h.key, "a lifetime window has no hop") }
        } else if let w = m["window"]?.value, let length = duration(w, "window") {
            var hop = Window.defaultHop(for: length)
            if let h = m["hop"]?.value, let given = duration(h, "hop") { hop = given }
            if length > NodeReader.longestWindow {
                fail(at: w, "window \(s(w)) is longer than the longest supported window (3650d)")
            } else if length < hop {
                fail(at: m["hop"]?.value ?? w, "window \(s(w)) is shorter than its hop \(Time.format(duration: hop))")
            } else if length % hop != 0 {
                fail(at: m["hop"]?.value ?? w, "hop \(Time.format(duration: hop)) does not divide window \(s(w))")
            } else if length / hop > Window.maxTiles {
                fail(at: m["hop"]?.value ?? w, "window \(s(w)) has \(length / hop) tiles of hop \(Time.format(duration: hop)); at most \(Window.maxTiles) (choose a longer hop)")
            } else {
                window = .sliding(length: length, hop: hop)
            }
        }

        var filter: TesseraCore.Predicate?
        var filterText: String?
        if let wn = m["where"]?.value, let text = string(wn, "where") {
            filterText = text
            if let source {
                switch WhereParser.parse(text, schema: source.schema) {
                case .success(let p): filter = p
                case .failure(let f):
                    var offset = 0
                    if case .scalar(let s) = wn, !text.contains("\n") {
                        offset = f.offset + (s.style == .singleQuoted || s.style == .doubleQuoted ? 1 : 0)
                    }
                    fail(at: wn, f.message, columnOffset: offset)
                }
            }
        }

        guard errors.count == before, let name, let aggregate, let window else { return nil }
        let spec = FeatureSpec(name: name, aggregate: aggregate, field: fieldIndex, window: window, filter: filter, percentile: percentile)
        return (Feature(name: name, aggregate: aggregate, field: field, window: window, filterText: filterText, percentile: percentile,
                        description: description), spec, nameNode)
    }

    private func s(_ node: Node) -> String { node.scalar?.string ?? "" }
}
