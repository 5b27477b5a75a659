// swift-tools-version: 6.0
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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // Pure aggregation core: columns, kernels, tiles, windows, emissions. No I/O.
        .target(name: "TesseraCore", dependencies: ["CPrefetch"], swiftSettings: strict),
        // One compiler builtin the core's hot loops use: a cache prefetch hint.
        .target(name: "CPrefetch"),
        // Topology files: YAML → validated model → core specs, errors with file:line:column.
        .target(
            name: "TesseraTopology",
            dependencies: ["TesseraCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict),
        // The reference workload of WORKLOAD.md: deterministic, seeded.
        .target(name: "TesseraWorkload", dependencies: ["TesseraCore"], swiftSettings: strict),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraCore", "TesseraTopology", "TesseraWorkload",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraCoreTests",
            dependencies: ["TesseraCore", "TesseraWorkload"],
            swiftSettings: strict),
        .testTarget(
            name: "TesseraTopologyTests",
            dependencies: ["TesseraTopology", "TesseraCore"],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
