import CRdKafka
import Logging

/// librdkafka's in-process mock cluster: a real Kafka-protocol broker inside this process, for
/// tests and the demo. It keeps only a few MiB per partition; size tests accordingly.
public final class MockKafkaCluster: @unchecked Sendable {  // librdkafka's mock API is thread-safe
    private let handle: OpaquePointer
    private let cluster: OpaquePointer
    private let context: ClientContext
    public let bootstrapServers: String

    public init(brokers: Int = 1, logger: Logger) throws {
        let conf = try makeConfiguration([("test.mock.num.brokers", String(brokers))])
        context = ClientContext(log: LogSink(logger: logger))
        rd_kafka_conf_set_opaque(conf, Unmanaged.passRetained(context).toOpaque())
        installLogCallback(conf)
        var error = [CChar](repeating: 0, count: 512)
        guard let rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, &error, error.count) else {
            rd_kafka_conf_destroy(conf)
            Unmanaged.passUnretained(context).release()
            throw KafkaError(code: -1, message: text(error), operation: "create mock cluster")
        }
        handle = rk
        guard let mc = rd_kafka_handle_mock_cluster(rk) else {
            throw KafkaError(code: -1, message: "this librdkafka has no mock cluster", operation: "create mock cluster")
        }
        cluster = mc
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(mc))
    }

    deinit {
        rd_kafka_destroy(handle)
        Unmanaged.passUnretained(context).release()
    }

    public func createTopic(_ name: String, partitions: Int, replication: Int = 1) throws {
        let err = rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replication))
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR else { throw kafkaError(err, "create mock topic \(name)") }
    }

    /// Takes a broker down (connections closed, requests refused) or brings it back.
    public func setBroker(_ id: Int32, up: Bool) {
        _ = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// Makes the next requests of a Kafka API (e.g. 1 = Fetch, 8 = OffsetCommit) fail with errors.
    public func injectErrors(apiKey: Int16, codes: [Int32]) {
        var errs = codes.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster, apiKey, errs.count, &errs)
    }
}
