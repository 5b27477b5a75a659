// swift-tools-version: 6.1
//
// Micro-benchmarks of the aggregation core (ordo-one/benchmark), kept in their own package so
// the benchmark dependency stays out of the main build and CI. Run: `make bench` at the top.
import PackageDescription

let package = Package(
    name: "tessera-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tessera", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "core-profile",
            dependencies: [
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraLog", package: "tessera"),
                .product(name: "TesseraSource", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
                .product(name: "TesseraWorkload", package: "tessera"),
            ],
            path: "Sources/CoreProfile"
        ),
        .executableTarget(
            name: "kafka-ceiling",
            dependencies: [.product(name: "TesseraKafka", package: "tessera")],
            path: "Sources/KafkaCeiling"
        ),
        .executableTarget(
            name: "rate-load",
            dependencies: [
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraKafka", package: "tessera"),
                .product(name: "TesseraWorkload", package: "tessera"),
            ],
            path: "Sources/RateLoad"
        ),
        .executableTarget(
            name: "CoreUpdate",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
                .product(name: "TesseraWorkload", package: "tessera"),
            ],
            path: "Benchmarks/CoreUpdate",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "Decode",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraSource", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
                .product(name: "TesseraWorkload", package: "tessera"),
            ],
            path: "Benchmarks/Decode",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
