import Logging

/// librdkafka's in-process mock cluster: a real Kafka-protocol broker inside this process, for
/// tests and the demo. It keeps only a few MiB per partition; size tests accordingly.
///
/// `@unchecked Sendable`: its fields are immutable and librdkafka's mock API is thread-safe.
public final class MockKafkaCluster: @unchecked Sendable {
    private let client: RDKafkaClient
    private let cluster: RDKafkaMockCluster
    public let bootstrapServers: String

    public init(brokers: Int = 1, logger: Logger) throws(KafkaError) {
        client = try RDKafkaClient(.producer, properties: [("test.mock.num.brokers", String(brokers))], logger: logger,
                                   operation: "create mock cluster")
        guard let cluster = client.mockCluster() else {
            // `client` is released with `self`: nothing leaks on this path.
            throw KafkaError(libraryCode: RDKafkaCode.clientFailure, message: "this librdkafka has no mock cluster",
                             operation: "create mock cluster")
        }
        self.cluster = cluster
        bootstrapServers = cluster.bootstrapServers
    }

    public func createTopic(_ name: String, partitions: Int, replication: Int = 1) throws(KafkaError) {
        try cluster.createTopic(name, partitions: partitions, replication: replication)
    }

    /// Takes a broker down (connections closed, requests refused) or brings it back.
    public func setBroker(_ id: Int32, up: Bool) { cluster.setBroker(id, up: up) }

    /// Makes the next requests of a Kafka API (e.g. 1 = Fetch, 8 = OffsetCommit) fail with errors.
    public func injectErrors(apiKey: Int16, codes: [Int32]) { cluster.pushRequestErrors(apiKey: apiKey, codes: codes) }
}
