import ArgumentParser
import Foundation
import TesseraCore
import TesseraTopology

/// `tessera validate FILE...`: exit 0 with a summary, or every error as FILE:LINE:COLUMN and exit 2.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check topology files; print every error as FILE:LINE:COLUMN: message.")

    @Argument(help: "Topology files (YAML).")
    var files: [String]

    @Flag(name: .shortAndLong, help: "Print only errors.")
    var quiet = false

    func run() throws {
        do {
            let topologies = try TopologyLoader.load(files: files)
            guard !quiet else { return }
            for t in topologies {
                print("\(t.file): team \(t.team): \(t.sources.count) source(s), \(t.entities.count) entit\(t.entities.count == 1 ? "y" : "ies"), \(t.views.count) view(s)")
                for v in t.views {
                    let keys = v.joinKeys.map { "\($0.name):\($0.type.rawValue)" }.joined(separator: ",")
                    print("  \(v.name) [\(keys)] from \(v.source): \(v.features.count) features, ttl \(v.ttl == 0 ? "none" : Time.format(duration: v.ttl))")
                }
            }
        } catch {
            for e in error.errors { printError(e.description) }
            throw ExitCode(2)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
