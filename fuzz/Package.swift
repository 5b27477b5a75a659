// swift-tools-version: 6.0
//
// libFuzzer targets for the readers of untrusted bytes: the JSON, Avro and Protobuf event decoders (Kafka
// payloads) and the topology loader (YAML files). Kept in their own package, like benchmarks/,
// so the sanitizer flags never reach the main build. Run `scripts/fuzz.sh [SECONDS]` at the top;
// it builds with `--sanitize fuzzer -Xswiftc -sanitize=fuzzer,address` into fuzz/.build-fuzz (the
// script says why those flags). With `--sanitize fuzzer` SwiftPM compiles the executables as
// libraries and libFuzzer supplies `main`; each target defines `LLVMFuzzerTestOneInput` (and
// `LLVMFuzzerInitialize`, to write its seeds).
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tessera-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "tessera", path: ".."),
    ],
    targets: [
        // What the executables share: writing their seed inputs and dictionary for scripts/fuzz.sh, the decoders' properties.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "TesseraCore", package: "tessera"), .product(name: "TesseraSource", package: "tessera")],
            swiftSettings: strict),
        .executableTarget(
            name: "fuzz-json",
            dependencies: [
                "FuzzSupport",
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraSource", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
                .product(name: "TesseraWorkload", package: "tessera"),
            ],
            path: "Sources/FuzzJSON",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fuzz-avro",
            dependencies: [
                "FuzzSupport",
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraSource", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
            ],
            path: "Sources/FuzzAvro",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fuzz-protobuf",
            dependencies: [
                "FuzzSupport",
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraSource", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
            ],
            path: "Sources/FuzzProtobuf",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "fuzz-topology",
            dependencies: [
                "FuzzSupport",
                .product(name: "TesseraCore", package: "tessera"),
                .product(name: "TesseraTopology", package: "tessera"),
            ],
            path: "Sources/FuzzTopology",
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
