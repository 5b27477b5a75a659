import TesseraCore

/// A team's topology file, validated: sources, entities and feature views.
public struct Topology: Sendable {
    public var file: String
    public var team: String
    public var owner: String?
    /// How the team's online rows are laid out in Redis (`online:` at the top of the file).
    public var online: OnlineFormat = .tessera
    public var sources: [Source]
    public var entities: [Entity]
    public var views: [FeatureView]

    public func source(named name: String) -> Source? { sources.first { $0.name == name } }
    public func entity(named name: String) -> Entity? { entities.first { $0.name == name } }
}

/// How a topology's online rows are laid out in Redis (docs/design.md, "The online store").
public enum OnlineFormat: Sendable, Hashable {
    /// Tessera's own layout: one hash per view and entity, values as text (the default).
    case tessera
    /// The layout Feast's Redis online store reads for `project`: one hash per entity key shared
    /// by every view on those keys, fields and values as Feast encodes them.
    case feast(project: String)

    /// The Feast project, for the feast layout.
    public var feastProject: String? {
        if case .feast(let project) = self { return project }
        return nil
    }
}

/// How a source's payload is encoded.
public enum SourceFormat: String, Sendable, CaseIterable {
    case json
    /// Avro in the schema registry's wire format (a zero byte, a 4-byte schema id, the value).
    case avro
    /// Protobuf in the schema registry's wire format (a zero byte, the schema id, the message
    /// indexes, the message), or plain messages of one type from a descriptor set file.
    case protobuf

    /// Whether payloads may name their schema in a schema registry.
    public var usesRegistry: Bool { self != .json }
}

/// A `protoc --descriptor_set_out` file and the message type a source's payloads are.
public struct DescriptorSetSettings: Sendable, Hashable {
    /// The file, resolved against the topology file's directory.
    public var path: String
    /// The message's full name (`shop.Order`).
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
}

/// Where a source's writer schemas are: a Confluent-compatible schema registry. Credentials and
/// TLS settings come from the environment (`TESSERA_SCHEMA_REGISTRY_USERNAME`, `…_PASSWORD` or
/// `…_PASSWORD_FILE`, `…_CA_FILE`), never from the topology or the command line.
public struct SchemaRegistrySettings: Sendable, Hashable {
    /// `http://HOST:PORT` or `https://…`, with an optional path prefix.
    public var url: String

    public init(url: String) { self.url = url }
}

/// How an event-time field is written in the payload.
public enum TimeUnit: String, Sendable, CaseIterable {
    case seconds = "s"
    case milliseconds = "ms"
    case microseconds = "us"
    case rfc3339
}

public struct TimeField: Sendable, Hashable {
    public var field: String
    public var unit: TimeUnit

    public init(field: String, unit: TimeUnit) {
        self.field = field
        self.unit = unit
    }
}

/// Where a declared field's value comes from: the payload (at a path of field names), or the
/// Kafka record around it.
public enum FieldOrigin: Sendable, Hashable, CustomStringConvertible {
    /// The payload's field at this path: one name for a top-level field, more for nested objects
    /// (`order.amount` is `["order", "amount"]`).
    case payload([String])
    /// The record key, as text (an int64 field reads it as decimal digits).
    case recordKey
    /// The record's timestamp (its create or log-append time), in milliseconds since the epoch.
    case recordTimestamp
    /// The value of the record's last header of this name, as text.
    case header(String)

    public var description: String {
        switch self {
        case .payload(let path): return path.joined(separator: ".")
        case .recordKey: return "the record key"
        case .recordTimestamp: return "the record timestamp"
        case .header(let name): return "header '\(name)'"
        }
    }

    /// The payload path, for a payload field.
    public var path: [String]? {
        if case .payload(let p) = self { return p }
        return nil
    }
}

/// A Kafka topic and how to read its events.
public struct Source: Sendable {
    public var name: String
    public var topic: String
    public var format: SourceFormat
    public var timestamp: TimeField
    /// Optional second timestamp (when the event was written), carried for tie-breaking and audits.
    public var createdTimestamp: TimeField?
    /// How far behind the partition's stream time an event may arrive and still count.
    public var allowedLateness: Micros
    /// The fields features and keys read, in declaration order (the column order).
    public var schema: Schema
    /// Where each field of `schema` comes from (its own name in the payload unless declared otherwise).
    public var origins: [FieldOrigin] = []
    /// The field the record key carries, as text (an int64 in decimal): the field by which the
    /// producers partition the topic, and a join key of every view over the source. Nil when no
    /// view reads the source.
    public var key: String?
    /// What happens to an event whose record key is not its `key` field's value, or has no key.
    public var keyMismatch: KeyMismatchPolicy = .deadLetter
    /// How far ahead of the time it was produced an event may be stamped and still count.
    public var maxFutureSkew: Micros = Source.defaultMaxFutureSkew
    /// Where the writer schemas are, for formats that name theirs (`SourceFormat.usesRegistry`).
    public var schemaRegistry: SchemaRegistrySettings?
    /// Protobuf without a registry: the message type's definition.
    public var descriptorSet: DescriptorSetSettings?

    public static let defaultMaxFutureSkew: Micros = Time.hour

    /// Where field `i` comes from.
    public func origin(_ i: Int) -> FieldOrigin { i < origins.count ? origins[i] : .payload([schema.names[i]]) }
}

/// What to do with a mis-keyed event: one whose record key is missing or names another entity
/// than its key field (its entity's state would be split across partitions).
public enum KeyMismatchPolicy: String, Sendable, CaseIterable {
    /// Dead-letter it (`key_mismatch`, `null_key`), the default.
    case deadLetter = "dead_letter"
    /// Aggregate it anyway, counted and logged as a warning.
    case accept
}

/// A business key: one or more join keys with their types.
public struct Entity: Sendable {
    public var name: String
    public var joinKeys: [(name: String, type: ValueType)]
    public var description: String?
}

public struct Feature: Sendable {
    public var name: String
    public var aggregate: Aggregate
    public var field: String?
    public var window: Window
    /// The `where` text as written, for display.
    public var filterText: String?
    public var percentile: Double?
    public var description: String?
}

/// A named set of features over one source, keyed by its entities.
public struct FeatureView: Sendable {
    public var name: String
    public var source: String
    public var entities: [String]
    /// Join keys in order (entity by entity), with their types.
    public var joinKeys: [(name: String, type: ValueType)]
    /// How long a value stays valid for serving and point-in-time joins; 0 means no limit.
    public var ttl: Micros
    public var online: Bool
    /// Its topology's online layout.
    public var onlineFormat: OnlineFormat = .tessera
    public var offline: Bool
    public var owner: String?
    public var description: String?
    public var tags: [(key: String, value: String)]
    public var features: [Feature]
    /// The view as the aggregation core runs it.
    public var spec: ViewSpec
    /// How soon after it is produced an event's effect should be readable in Redis, if a target
    /// is set (`freshness_target:`): the share of rows written within it is a metric.
    public var freshnessTarget: Micros?
    /// Statistics and drift (`quality:`).
    public var quality = ViewQuality()
}

/// One problem in a topology file, located by line and column (1-based).
public struct TopologyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public var message: String

    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// Every problem found in one or more topology files.
public struct TopologyErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [TopologyError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
