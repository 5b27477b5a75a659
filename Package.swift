// swift-tools-version: 6.1
//
// Data flow, one target per stage:
//   topology YAML ──TesseraTopology──▶ ViewSpec
//   column batches ──TesseraCore──▶ tiles ──▶ emissions (entity, feature row, event_timestamp)
//   TesseraWorkload: the seeded reference-event generator shared by the CLI, tests and benchmarks.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tessera",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tessera", targets: ["tessera"]),
        .library(name: "TesseraCore", targets: ["TesseraCore"]),
        .library(name: "TesseraTopology", targets: ["TesseraTopology"]),
        .library(name: "TesseraWorkload", targets: ["TesseraWorkload"]),
        .library(name: "TesseraOffline", targets: ["TesseraOffline"]),
        .library(name: "TesseraSource", targets: ["TesseraSource"]),
        .library(name: "TesseraKafka", targets: ["TesseraKafka"]),
        .library(name: "TesseraTraining", targets: ["TesseraTraining"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
    ],
    targets: [
        // Pure aggregation core: columns, kernels, tiles, windows, emissions. No I/O.
        // Optimised in debug builds too: the property and sketch tests push millions of events
        // through it, and unoptimised it is two orders of magnitude slower.
        .target(name: "TesseraCore", dependencies: ["CIntrinsics"],
                swiftSettings: strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // Compiler builtins the core uses: a cache prefetch hint, log and exp.
        .target(name: "CIntrinsics"),
        // Topology files: YAML → validated model → core specs, errors with file:line:column.
        .target(
            name: "TesseraTopology",
            dependencies: ["TesseraCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        // C libraries from Debian.
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSnappy", providers: [.apt(["libsnappy-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"])]),
        // The offline log's file format: Parquet written and read without a Parquet library.
        .target(name: "TesseraOffline", dependencies: ["TesseraCore", "CZstd", "CSnappy"], swiftSettings: strict),
        // Message bytes → columns: the JSON event decoder and the dead-letter vocabulary.
        .target(name: "TesseraSource", dependencies: ["TesseraCore", "TesseraTopology"], swiftSettings: strict),
        // Kafka over librdkafka: consumer group, batches, offsets, rebalances; producer; mock cluster.
        .target(
            name: "TesseraKafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Redis over hiredis: pipelined RESP batches, reconnect with backoff.
        .target(
            name: "TesseraRedis",
            dependencies: ["CHiredis", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // The worker: source → decode → core → sinks, commit policy, checkpoints.
        .target(
            name: "TesseraEngine",
            dependencies: [
                "TesseraCore", "TesseraTopology", "TesseraSource", "TesseraKafka", "TesseraRedis", "TesseraOffline",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        // Training sets: point-in-time (as-of) joins over the offline log, compaction.
        .target(
            name: "TesseraTraining",
            dependencies: ["TesseraCore", "TesseraTopology", "TesseraOffline", "TesseraEngine"],
            swiftSettings: strict),
        // Shared by tests and benchmarks only: the brute-force window oracle, seeded randomness,
        // servers started on free loopback ports.
        .target(name: "TesseraTestSupport", dependencies: ["TesseraCore", "TesseraEngine"], swiftSettings: strict),
        // The reference workload of WORKLOAD.md: deterministic, seeded.
        .target(name: "TesseraWorkload", dependencies: ["TesseraCore"], swiftSettings: strict),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraCore", "TesseraTopology", "TesseraWorkload", "TesseraEngine", "TesseraKafka", "TesseraRedis",
                "TesseraOffline", "TesseraSource", "TesseraTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraCoreTests",
            dependencies: ["TesseraCore", "TesseraWorkload", "TesseraTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraOfflineTests",
            dependencies: ["TesseraOffline", "TesseraCore", "TesseraTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraSourceTests",
            dependencies: ["TesseraSource", "TesseraCore", "TesseraTopology", "TesseraWorkload", "TesseraTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraKafkaTests",
            dependencies: ["TesseraKafka"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraRedisTests",
            dependencies: ["TesseraRedis"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraEngineTests",
            dependencies: ["TesseraEngine", "TesseraTestSupport", "TesseraWorkload", "TesseraKafka", "TesseraRedis",
                           "TesseraOffline", "TesseraSource", "TesseraTopology", "TesseraCore"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraTrainingTests",
            dependencies: ["TesseraTraining", "TesseraTestSupport", "TesseraEngine", "TesseraOffline", "TesseraTopology", "TesseraCore",
                           "TesseraWorkload", "TesseraKafka", "TesseraRedis"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraTopologyTests",
            dependencies: ["TesseraTopology", "TesseraCore", "TesseraTestSupport"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
