import ArgumentParser
import Foundation
import TesseraCore
import TesseraEngine
import TesseraLog
import TesseraOffline

/// `tessera inspect DIR`: what an offline directory holds.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe an offline directory: views, partitions, files, rows, time ranges, checkpoints.")

    @Argument(help: "The offline directory (the worker's --offline-dir).") var directory: String
    @Flag(help: "List every file.") var files = false

    func run() throws {
        let fm = FileManager.default
        let views = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix("_") && !$0.hasPrefix(".") }.sorted()
        guard !views.isEmpty else {
            printError("\(directory) holds no offline log")
            throw ExitCode(1)
        }
        for view in views {
            let paths = OfflineLog.files(directory: directory, view: view)
            var rows = 0, bytes = 0
            var first = Int64.max, last = Int64.min
            var byPartition: [String: (files: Int, rows: Int, minOffset: Int64, maxOffset: Int64)] = [:]
            // Every column seen, in order of first appearance, and how many files hold it (files
            // written before a feature was added to the view lack its column).
            var columns: [(field: ParquetField, files: Int)] = []
            for path in paths {
                let reader = try ParquetFileReader(path: path)
                for field in reader.schema.fields {
                    if let i = columns.firstIndex(where: { $0.field.name == field.name }) { columns[i].files += 1 } else { columns.append((field, 1)) }
                }
                rows += reader.rowCount
                bytes += (try? fm.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
                if let t = reader.schema.fields.firstIndex(where: { $0.name == "event_timestamp" }) {
                    for g in reader.rowGroups {
                        if let lo = g.columns[t].minInt { first = min(first, lo) }
                        if let hi = g.columns[t].maxInt { last = max(last, hi) }
                    }
                }
                let partition = URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
                var p = byPartition[partition] ?? (0, 0, .max, .min)
                p.files += 1
                p.rows += reader.rowCount
                if let name = OfflineLog.parse(fileName: URL(fileURLWithPath: path).lastPathComponent) {
                    p.minOffset = min(p.minOffset, name.first)
                    p.maxOffset = max(p.maxOffset, name.last)
                }
                byPartition[partition] = p
                if files { print("  \(path): \(reader.rowCount) rows, \(reader.rowGroups.count) row group(s)") }
            }
            print("\(view): \(rows) rows in \(paths.count) Parquet files (\(bytes / 1024) KiB)")
            if first <= last { print("  event_timestamp \(RFC3339.format(first)) … \(RFC3339.format(last))") }
            if !columns.isEmpty {
                print("  columns: " + columns.map { c in
                    "\(c.field.name) \(c.field.type.rawValue)\(c.field.nullable ? "" : " not null")\(c.files < paths.count ? " (in \(c.files) of \(paths.count) files)" : "")"
                }.joined(separator: ", "))
            }
            for (partition, p) in byPartition.sorted(by: { $0.key < $1.key }) {
                print("  \(partition): \(p.files) files, \(p.rows) rows, input offsets \(p.minOffset)…\(p.maxOffset)")
            }
        }
        let state = "\(directory)/_state"
        if let groups = try? fm.contentsOfDirectory(atPath: state) {
            for group in groups.sorted() {
                for topic in ((try? fm.contentsOfDirectory(atPath: "\(state)/\(group)")) ?? []).sorted() {
                    let dir = "\(state)/\(group)/\(topic)"
                    let checkpoints = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".state") }
                        .sorted { (Int($0.split(separator: ".")[0]) ?? 0) < (Int($1.split(separator: ".")[0]) ?? 0) }
                    for file in checkpoints {
                        let size = (try? fm.attributesOfItem(atPath: "\(dir)/\(file)")[.size] as? Int) ?? 0
                        print("checkpoint \(group)/\(topic)[\(file.split(separator: ".")[0])]: \(size / 1024) KiB")
                    }
                }
            }
        }
        let dead = "\(directory)/_dead_letters.jsonl"
        if let text = try? String(contentsOfFile: dead, encoding: .utf8), !text.isEmpty {
            print("dead letters: \(text.split(separator: "\n").count) in \(dead)")
        }
    }
}
