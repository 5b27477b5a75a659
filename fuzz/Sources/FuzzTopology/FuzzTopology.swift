import FuzzSupport
import TesseraCore
import TesseraTopology

// libFuzzer target: every input is a topology file's text (bytes decoded as UTF-8 with invalid
// sequences replaced; `TopologyLoader.load` refuses a file that is not UTF-8 before parsing it).
// Errors are expected; what must hold:
//
// - the loader returns (never crashes, never hangs);
// - a rejected file has at least one error, each located at a line of the file (1-based);
// - loading is deterministic: the same text gives the same topology or the same errors;
// - an accepted topology is consistent: each view's source is declared, its join keys and
//   feature fields are fields of that source, and the aggregation core accepts its views.

/// Lines as YAML (libyaml) counts them: a line ends at LF, CR, CR LF, NEL, LS or PS.
func lineCount(_ text: String) -> Int {
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

func summary(_ result: Result<Topology, TopologyErrors>) -> String {
    switch result {
    case .success(let t):
        return "ok \(t.team) \(t.sources.map(\.name)) \(t.entities.map(\.name)) "
            + "\(t.views.map { "\($0.name):\($0.spec.features.map(\.name))" })"
    case .failure(let e):
        return "errors \(e.description)"
    }
}

func check(_ topology: Topology) {
    for view in topology.views {
        guard let source = topology.source(named: view.source) else { fatalError("view \(view.name) reads an undeclared source \(view.source)") }
        guard source.schema == view.spec.schema else { fatalError("view \(view.name) does not use its source's schema") }
        for key in view.joinKeys {
            guard let i = source.schema.index(of: key.name), source.schema.types[i] == key.type else {
                fatalError("view \(view.name): join key \(key.name) is not a \(key.type) field of \(source.name)")
            }
        }
        for feature in view.spec.features {
            if let field = feature.field, !source.schema.types.indices.contains(field) {
                fatalError("view \(view.name): feature \(feature.name) reads field #\(field) of \(source.schema.names.count)")
            }
        }
        guard !view.features.isEmpty, view.features.count == view.spec.features.count else {
            fatalError("view \(view.name) has \(view.features.count) features and \(view.spec.features.count) specs")
        }
    }
    for source in topology.sources {
        let views = topology.views.filter { $0.source == source.name }.map(\.spec)
        guard !views.isEmpty else { continue }
        _ = PartitionAggregator(views: views, allowedLateness: source.allowedLateness)
    }
}

/// Runs once before fuzzing; `--write-seeds DIR DICT` writes the seeds and dictionary instead.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    writeSeedsIfAsked(seeds: topologySeeds, dictionary: topologyDictionary)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTopology(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: size == 0 ? nil : data, count: size), as: UTF8.self)
    let result = TopologyLoader.parse(yaml: text, file: "fuzz.yaml")
    switch result {
    case .success(let topology):
        check(topology)
    case .failure(let errors):
        guard !errors.errors.isEmpty else { fatalError("rejected without an error") }
        let lines = lineCount(text)
        for e in errors.errors where e.line < 1 || e.line > lines + 1 || e.column < 1 {
            fatalError("error outside the file (\(lines) lines): \(e)")
        }
    }
    let again = TopologyLoader.parse(yaml: text, file: "fuzz.yaml")
    // Yams reports duplicate keys of a mapping that also has non-scalar keys in an order that
    // varies from run to run (it sorts keys with a comparison that does not order scalars against
    // mappings): such files get the same error at a varying place.
    if case .failure(let e) = result, e.errors.contains(where: { $0.message.contains("<uncovertable>") }) { return 0 }
    guard summary(again) == summary(result) else {
        fatalError("loading twice differs:\n\(summary(result))\n\(summary(again))")
    }
    return 0
}
