import Foundation
import Testing
import TesseraCore
import TesseraTestSupport
@testable import TesseraTopology

// Seeded random mutation of topology files, the quick in-suite companion of the libFuzzer target in
// fuzz/ (scripts/fuzz.sh): whatever the text, the loader returns a model or errors, each located
// at a line and column of the file (docs/design.md, "Bad input and faults"), and never crashes.


/// Line- and byte-level mutations of YAML text.
struct YAMLMutator {
    var g: SeededGenerator

    /// Keys and values the loader knows, and YAML syntax that changes what a line means.
    static let tokens: [String] = [
        "team", "sources", "entities", "feature_views", "name", "topic", "format", "timestamp", "fields", "join_keys",
        "features", "aggregate", "window", "hop", "where", "percentile", "ttl", "online", "tags", "field", "unit",
        "allowed_lateness", "created_timestamp", "json", "int64", "float64", "string", "bool", "count", "sum",
        "approx_percentile", "lifetime", "ms", "rfc3339", ": ", "- ", "? ", "{", "}", "[", "]", ", ", "'", "\"", "#", "&a ", "*a",
        "<<: *a", "!!str ", "!!map ", "!custom ", "---\n", "...\n", "|\n", ">-\n", "%YAML 1.1\n", "\t", "\r", "\r\n", "\u{85}",
        "\u{2028}", "\u{FEFF}", "\u{0}", "~", "null", "", "0", "-1", "1us", "3651d", "99999999999999999999d", "9223372036854775807us",
        "1e400", ".nan", ".inf", "0.95", "2", "status == ", " and ", " or not ", " in [", "\"x\\", "'it''s'",
    ]

    init(seed: UInt64) { g = SeededGenerator(seed: seed) }

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &g) }

    mutating func mutate(_ text: String, splicing other: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for _ in 0..<int(1..<4) {
            let i = int(0..<lines.count)
            switch int(0..<9) {
            case 0: lines.remove(at: i)
            case 1: lines.insert(lines[i], at: int(0..<(lines.count + 1)))
            case 2: lines.swapAt(i, int(0..<lines.count))
            case 3: lines[i] = String(repeating: int(0..<4) == 0 ? "\t" : " ", count: int(1..<5)) + lines[i]
            case 4: lines[i] = String(lines[i].drop { $0 == " " }.prefix(int(0..<(lines[i].count + 1))))
            case 5:  // a value replaced by a token
                if let colon = lines[i].firstIndex(of: ":") {
                    lines[i] = String(lines[i][...colon]) + " " + Self.tokens[int(0..<Self.tokens.count)]
                }
            case 6:  // deep flow nesting
                let n = [10, 999, 1_001, 5_000][int(0..<4)]
                lines[i] += " " + String(repeating: "[", count: n) + (int(0..<2) == 0 ? String(repeating: "]", count: n) : "")
            default:  // a token inserted anywhere in the line
                var chars = Array(lines[i])
                chars.insert(contentsOf: Self.tokens[int(0..<Self.tokens.count)], at: int(0..<(chars.count + 1)))
                lines[i] = String(chars)
            }
            if lines.isEmpty { lines = [""] }
        }
        var bytes = Array(lines.joined(separator: "\n").utf8)
        for _ in 0..<int(0..<3) {
            let at = int(0..<(bytes.count + 1))
            switch int(0..<5) {
            case 0 where at < bytes.count: bytes[at] ^= 1 << UInt8(int(0..<8))
            case 1: bytes.removeSubrange(at...)
            case 2:
                let tail = Array(other.utf8)
                bytes = Array(bytes[..<at]) + tail[int(0..<(tail.count + 1))...]
            case 3 where at < bytes.count: bytes.removeSubrange(at..<min(bytes.count, at + int(1..<40)))
            default: bytes.insert(UInt8.random(in: 0...255, using: &g), at: at)
            }
        }
        // As a file would be read: invalid UTF-8 becomes U+FFFD.
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Lines as YAML counts them (a line ends at LF, CR, CR LF, NEL, LS or PS), so an error at the
/// end of the last line is still inside the file.
func yamlLineCount(_ text: String) -> Int {
    var lines = 1
    var previous: Unicode.Scalar = " "
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\n": if previous != "\r" { lines += 1 }
        case "\r", "\u{85}", "\u{2028}", "\u{2029}": lines += 1
        default: break
        }
        previous = scalar
    }
    return lines
}

@Suite("Topology files, mutated", .timeLimit(.minutes(1)))
struct TopologyFuzzTests {
    static var seeds: [String] {
        let dir = packageRoot.appendingPathComponent("topologies")
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasSuffix(".yaml") }.sorted()
        return [baseTopology] + names.compactMap { try? String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8) }
    }

    /// What must hold of any outcome: a consistent model, or errors inside the file.
    static func check(_ result: Result<Topology, TopologyErrors>, _ text: String) {
        switch result {
        case .success(let topology):
            for view in topology.views {
                let source = topology.source(named: view.source)
                #expect(source != nil, "view \(view.name) reads an undeclared source\n\(text)")
                #expect(source?.schema == view.spec.schema)
                #expect(!view.joinKeys.isEmpty && !view.features.isEmpty && view.features.count == view.spec.features.count)
            }
        case .failure(let e):
            #expect(!e.errors.isEmpty, "rejected without an error\n\(text)")
            let lines = yamlLineCount(text)
            for error in e.errors {
                #expect(error.line >= 1 && error.line <= lines + 1 && error.column >= 1, "\(error) is outside the file (\(lines) lines)\n\(text)")
                #expect(!error.message.isEmpty && error.description.hasPrefix("fuzz.yaml:\(error.line):\(error.column): "))
            }
        }
    }

    @Test("every mutated file loads into a model or errors, each with a line ≥ 1 and a column ≥ 1", arguments: 0..<6)
    func mutations(seed: Int) {
        let seeds = Self.seeds
        #expect(seeds.count >= 3)
        var mutator = YAMLMutator(seed: 0x7090 &+ UInt64(seed))
        var accepted = 0, rejected = 0
        for n in 0..<250 {
            let text = mutator.mutate(seeds[n % seeds.count], splicing: seeds[mutator.int(0..<seeds.count)])
            let result = TopologyLoader.parse(yaml: text, file: "fuzz.yaml")
            Self.check(result, text)
            if case .success = result { accepted += 1 } else { rejected += 1 }
        }
        // Both outcomes are reached, or the mutations test little.
        #expect(accepted > 0 && rejected > 0, "\(accepted) accepted, \(rejected) rejected")
    }

    @Test("hostile files: deep nesting, huge durations, control characters, other encodings")
    func hostile() {
        var cases: [String] = [
            "team: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
            "team: " + String(repeating: "{a: ", count: 50_000),
            "team: x\nsources:\n" + String(repeating: "- ", count: 50_000) + "x",
            String(repeating: "a: &a [*a, *a]\n", count: 100),
            "a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
            "", "\n\n", "---\n...\n", "--- |\n  text", "[]", "team: growth\n---\nteam: other", "%YAML 9.9\n---\nteam: x", "!!binary aGk=",
            "\u{FEFF}" + baseTopology,
            baseTopology + "\n\u{0}",
            String(decoding: Array(baseTopology.utf16).flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }, as: UTF8.self),
        ]
        for (plain, replacement) in [("\n", "\r"), ("\n", "\r\n"), ("\n", "\u{2028}"), ("    ", "\t"),
                                     ("window: 1h", "window: 9223372036854775807us"), ("window: 1h", "window: 99999999999999999999999d"),
                                     ("window: 1h", "window: 3650d, hop: 1us")] {
            cases.append(baseTopology.replacingOccurrences(of: plain, with: replacement))
        }
        for text in cases {
            Self.check(TopologyLoader.parse(yaml: text, file: "fuzz.yaml"), text)
        }
    }

    /// Found by fuzzing: a long enough `where` overflowed the stack, in the parser (nesting) or in
    /// the walks of the predicate that follow it (a long chain of `and`), instead of being reported.
    @Test("a where too deeply nested or too long is an error at its line, not a crash", arguments: [
        (String(repeating: "(", count: 200_000), "where nests more than 64 levels"),
        (String(repeating: "not ", count: 200_000) + "amount > 1", "where nests more than 64 levels"),
        (String(repeating: "(", count: 64) + "amount > 1" + String(repeating: ")", count: 64), "where nests more than 64 levels"),
        (String(repeating: "amount > 1 and ", count: 100_000) + "amount > 1", "where has more than 256 comparisons"),
        (String(repeating: "amount > 1 or ", count: 256) + "amount > 1", "where has more than 256 comparisons"),
    ])
    func whereLimits(_ expression: String, _ message: String) {
        let yaml = baseTopology.replacingOccurrences(of: "window: 1h}", with: "window: 1h, where: '\(expression)'}")
        guard case .failure(let e) = TopologyLoader.parse(yaml: yaml, file: "t.yaml") else { Issue.record("accepted"); return }
        #expect(e.errors.count == 1 && e.errors[0].line == 19 && e.errors[0].message.hasPrefix(message), "\(e.errors.prefix(3))")
    }

    @Test("a where at the limits is accepted")
    func whereAtTheLimits() throws {
        for expression in [String(repeating: "(", count: 63) + "amount > 1" + String(repeating: ")", count: 63),
                           String(repeating: "not ", count: 63) + "amount > 1",
                           String(repeating: "amount > 1 or ", count: 255) + "amount > 1"] {
            let yaml = baseTopology.replacingOccurrences(of: "window: 1h}", with: "window: 1h, where: '\(expression)'}")
            let topology = try TopologyLoader.parse(yaml: yaml, file: "t.yaml").get()
            #expect(topology.views[0].spec.features[0].filter != nil)
        }
    }
}
