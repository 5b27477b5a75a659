// swift-tools-version: 6.1
//
// The data flow, one room per stage:
//
//   message bytes ─Source─▶ columns ─Core─▶ tiles ─▶ emissions ─┬─Online─▶ Redis
//                                                               └─Log────▶ Parquet, checkpoints
//   Engine runs it (the worker, backfill); Kafka brings the bytes and takes the commits.
//
// The target graph (an arrow points at what a target uses; a C library is linked only by the
// one target that wraps it):
//
//   tessera (CLI) ──▶ TesseraEngine ──▶ TesseraSource ──▶ TesseraTopology ──▶ TesseraCore ──▶ CIntrinsics
//        │                 ├──▶ TesseraKafka ──▶ CRdKafka (librdkafka)
//        │                 ├──▶ TesseraRegistry ──▶ CCurl (libcurl: schema registries)
//        │                 ├──▶ TesseraOnline ──▶ TesseraRedis ──▶ CHiredis (hiredis)
//        │                 └──▶ TesseraLog ──▶ TesseraOffline ──▶ CZstd, CSnappy
//        ├──▶ TesseraTraining ──▶ TesseraLog        (no Kafka, no Redis)
//        └──▶ TesseraWorkload, TesseraProcess       (the reference load; child processes)
//   TesseraTestSupport ──▶ TesseraCore, TesseraProcess   (tests and benchmarks only)
//
// No library target depends on TesseraEngine; `tests/system/test_architecture.py` checks it.
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
        .library(name: "TesseraLog", targets: ["TesseraLog"]),
        .library(name: "TesseraOnline", targets: ["TesseraOnline"]),
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
        // Compiler builtins and C the core uses: a cache prefetch hint, log and exp, state memory, the
        // CRC-32C of checkpoints and the CRC-32 of Parquet pages (TesseraCore.PageChecksum).
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
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Parquet written and read without a Parquet library, and the file primitives durability
        // rests on (written in full and fsynced; replaced atomically).
        .target(name: "TesseraOffline", dependencies: ["TesseraCore", "CZstd", "CSnappy"], swiftSettings: strict),
        // The durable formats: the offline log (Parquet files per view and partition) and the
        // partition checkpoints. Written by the worker, read by training sets and compaction.
        .target(name: "TesseraLog", dependencies: ["TesseraCore", "TesseraTopology", "TesseraOffline"], swiftSettings: strict),
        // Message bytes → columns: the JSON event decoder and the dead-letter vocabulary.
        .target(name: "TesseraSource", dependencies: ["TesseraCore", "TesseraTopology"], swiftSettings: strict),
        // Kafka over librdkafka: consumer group, batches, offsets, rebalances; producer; mock
        // cluster. Every librdkafka call is in RDKafka/.
        .target(
            name: "TesseraKafka",
            dependencies: ["CRdKafka", "TesseraCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Redis over hiredis: pipelined RESP batches. Every hiredis call is in Hiredis/.
        .target(
            name: "TesseraRedis",
            dependencies: ["CHiredis", "TesseraCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Schema registries over HTTP (libcurl): writer schemas by id, cached. Every libcurl call is in Curl/.
        .target(name: "TesseraRegistry", dependencies: ["CCurl", "TesseraCore"], swiftSettings: strict),
        // The online store: how rows look in Redis (keys, values and their encoders, both ways),
        // the coalescing writer, reads in Feast's shapes, the bounded connection pool of serve.
        .target(
            name: "TesseraOnline",
            dependencies: [
                "TesseraCore", "TesseraTopology", "TesseraRedis",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        // The worker: source → decode → core → sinks, the commit protocol behind checkpoints,
        // backfill over the same path, and the Service that runs the worker.
        .target(
            name: "TesseraEngine",
            dependencies: [
                "TesseraCore", "TesseraTopology", "TesseraSource", "TesseraKafka", "TesseraRedis", "TesseraOffline",
                "TesseraLog", "TesseraOnline", "TesseraRegistry",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // Training sets: point-in-time (as-of) joins over the offline log, compaction.
        .target(
            name: "TesseraTraining",
            dependencies: ["TesseraCore", "TesseraTopology", "TesseraOffline", "TesseraLog"],
            swiftSettings: strict),
        // Child processes with a clean signal mask, stopped by PID: the demo's and the tests'
        // redis-server.
        .target(name: "TesseraProcess", swiftSettings: strict),
        // Shared by tests and benchmarks only: the brute-force window oracle, seeded randomness,
        // servers started on free loopback ports. No C client library below it.
        .target(name: "TesseraTestSupport", dependencies: ["TesseraCore", "TesseraProcess"], swiftSettings: strict),
        // The reference workload of docs/workload.md: deterministic, seeded.
        .target(name: "TesseraWorkload", dependencies: ["TesseraCore"], swiftSettings: strict),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraCore", "TesseraTopology", "TesseraWorkload", "TesseraEngine", "TesseraKafka", "TesseraRedis",
                "TesseraOffline", "TesseraSource", "TesseraTraining", "TesseraLog", "TesseraOnline", "TesseraProcess", "TesseraRegistry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
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
            name: "TesseraOnlineTests",
            dependencies: ["TesseraOnline", "TesseraRedis", "TesseraTopology", "TesseraCore", "TesseraTestSupport"],
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
                           "TesseraOffline", "TesseraSource", "TesseraTopology", "TesseraCore", "TesseraLog", "TesseraOnline"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraTrainingTests",
            dependencies: ["TesseraTraining", "TesseraTestSupport", "TesseraEngine", "TesseraOffline", "TesseraTopology", "TesseraCore",
                           "TesseraWorkload", "TesseraKafka", "TesseraRedis", "TesseraLog", "TesseraOnline"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraTopologyTests",
            dependencies: ["TesseraTopology", "TesseraCore", "TesseraTestSupport"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
