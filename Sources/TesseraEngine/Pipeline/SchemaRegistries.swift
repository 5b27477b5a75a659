import Foundation
import TesseraKafka
import TesseraRegistry
import TesseraSource
import TesseraTopology

/// Where a worker's sources find their writer schemas: one client per schema registry URL, and
/// the decoders of Protobuf sources defined by a descriptor set file (read and checked once, before
/// anything connects). Before a polled batch is decoded, the schemas it names that are not known
/// yet are fetched (`unknown`, then `SchemaRegistryClient.fetch`): decoding then never waits, and a
/// registry that cannot be reached stops the worker from consuming (retried with backoff,
/// reported) instead of failing events.
final class SchemaRegistries {
    private var clients: [String: SchemaRegistryClient] = [:]
    /// Protobuf decoders of descriptor-set sources, by source name (each partition copies one).
    private var descriptorDecoders: [String: ProtobufEventDecoder] = [:]

    init(sources: [Source], maxMessageBytes: Int = 1 << 20, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        for s in sources {
            if let d = s.descriptorSet {
                guard let bytes = FileManager.default.contents(atPath: d.path) else {
                    throw EngineError(.topology, "source \(s.name): cannot read the descriptor set \(d.path)")
                }
                do {
                    descriptorDecoders[s.name] = try ProtobufEventDecoder(source: s, descriptorSet: Array(bytes), message: d.message, maxBytes: maxMessageBytes)
                } catch {
                    throw EngineError(.topology, "source \(s.name): \(d.path): \(error.description)",
                                      remedy: "Write the set with protoc --descriptor_set_out=FILE --include_imports, and declare the message's fields by name")
                }
            }
            guard let url = s.schemaRegistry?.url, clients[url] == nil else { continue }
            clients[url] = try SchemaRegistryClient(url: url, environment: environment)
        }
    }

    func descriptorDecoder(for source: Source) -> ProtobufEventDecoder? { descriptorDecoders[source.name] }

    var isEmpty: Bool { clients.isEmpty }

    func client(for source: Source) -> SchemaRegistryClient? { source.schemaRegistry.flatMap { clients[$0.url] } }

    /// Schemas fetched, found missing, and failed requests, over every registry.
    var stats: SchemaRegistryClient.Counters {
        clients.values.reduce(into: SchemaRegistryClient.Counters()) { total, c in
            let s = c.stats
            total.fetched += s.fetched
            total.missing += s.missing
            total.failures += s.failures
        }
    }

    /// The schema ids `records` name that their partition's registry has not given yet, by registry.
    static func unknown(_ records: UnsafeBufferPointer<KafkaRecord>, pipeline: (KafkaRecord) -> PartitionPipeline?) -> [ObjectIdentifier: (SchemaRegistryClient, Set<UInt32>)] {
        var wanted: [ObjectIdentifier: (SchemaRegistryClient, Set<UInt32>)] = [:]
        var last: (topic: Int, partition: Int32, client: SchemaRegistryClient?)?
        for r in records {
            if last == nil || last!.topic != r.topic || last!.partition != r.partition {
                last = (r.topic, r.partition, pipeline(r)?.schemas)
            }
            guard let client = last!.client, let id = RegistryFraming.schemaID(r.payload), client.cached(id) == nil else { continue }
            wanted[ObjectIdentifier(client), default: (client, [])].1.insert(id)
        }
        return wanted
    }
}
