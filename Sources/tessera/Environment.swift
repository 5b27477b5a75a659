import ArgumentParser
import Foundation
import Logging
import TesseraCore
import TesseraTopology
import Yams

/// A flag of a command without a config file (`serve`, `backfill`, …), or its `TESSERA_<FLAG>`
/// variable (`--offline-dir` → `TESSERA_OFFLINE_DIR`); a flag on the command line wins. The
/// same resolution as the worker's `Settings`, without the file.
func setting(_ flag: String?, _ name: String) -> String? {
    var settings = Settings()
    return settings.value(flag, name)
}

func required(_ flag: String?, _ name: String) throws -> String {
    var settings = Settings()
    return try settings.required(flag, name)
}

/// Loads topology files (directories expand to their *.yaml files); exits 2 on errors.
func loadTopologies(_ paths: [String]) throws -> [Topology] {
    var files: [String] = []
    for path in paths {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            files += names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "\(path)/\($0)" }
        } else {
            files.append(path)
        }
    }
    do {
        return try TopologyLoader.load(files: files)
    } catch {
        for e in error.errors { printError(e.description) }
        throw ExitCode(2)
    }
}

/// librdkafka properties from `--kafka-config KEY=VALUE` flags, `TESSERA_KAFKA_<PROPERTY>`
/// variables (`TESSERA_KAFKA_SASL_PASSWORD` → `sasl.password`) and `--kafka-config-file`. Secrets are
/// refused on the command line, where every user of the machine can read them.
func kafkaProperties(flags: [String], file: String?, configured: [String] = []) throws -> [(String, String)] {
    var properties: [(String, String)] = []
    // From the worker config file (lowest precedence): KEY=VALUE strings; secrets allowed (a file).
    for entry in configured {
        guard let eq = entry.firstIndex(of: "=") else { throw ValidationError("kafka-config in the config file takes KEY=VALUE, got \(isSecret(entry) ? "something naming a secret (not shown)" : entry)") }
        properties.append((String(entry[..<eq]), String(entry[entry.index(after: eq)...])))
    }
    if let file = setting(file, "kafka-config-file") {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
        for line in text.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { continue }
            properties.append((String(trimmed[..<eq]).trimmingCharacters(in: .whitespaces), String(trimmed[trimmed.index(after: eq)...]).trimmingCharacters(in: .whitespaces)))
        }
    }
    for (key, value) in ProcessInfo.processInfo.environment where key.hasPrefix("TESSERA_KAFKA_") && key != "TESSERA_KAFKA_CONFIG_FILE" {
        properties.append((key.dropFirst("TESSERA_KAFKA_".count).lowercased().replacingOccurrences(of: "_", with: "."), value))
    }
    for flag in flags {
        guard let eq = flag.firstIndex(of: "=") else { throw ValidationError("--kafka-config takes KEY=VALUE, got \(isSecret(flag) ? "something naming a secret (not shown)" : flag)") }
        let key = String(flag[..<eq])
        if isSecret(key) {
            throw ValidationError("\(key) is a secret: pass it as TESSERA_KAFKA_\(key.uppercased().replacingOccurrences(of: ".", with: "_")) or in --kafka-config-file, not on the command line")
        }
        properties.append((key, String(flag[flag.index(after: eq)...])))
    }
    return properties
}

func isSecret(_ key: String) -> Bool {
    let k = key.lowercased()
    return k.contains("password") || k.contains("secret") || k.hasSuffix(".key") || k.contains("key.pem") || k.contains("token")
}

/// Logs to stderr: text on a terminal, JSON lines otherwise (for log collectors).
func makeLogger(_ label: String, level: Logger.Level? = nil) -> Logger {
    var logger = Logger(label: label) { label in StderrLogHandler(label: label, json: isatty(2) == 0) }
    logger.logLevel = level ?? setting(nil, "log-level").flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}

struct StderrLogHandler: LogHandler {
    let label: String
    let json: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        let line: String
        if json {
            var fields = ["\"time\":\"\(time)\"", "\"level\":\"\(event.level)\"", "\"message\":\(JSONText.quoted("\(event.message)"))"]
            for (k, v) in all.sorted(by: { $0.key < $1.key }) { fields.append("\(JSONText.quoted(k)):\(JSONText.quoted("\(v)"))") }
            line = "{" + fields.joined(separator: ",") + "}\n"
        } else {
            let meta = all.isEmpty ? "" : " " + all.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = "\(time) \(event.level) \(event.message)\(meta)\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// A YAML error by position and problem only: Yams's description quotes the offending line, and
/// a config file may hold secrets (`redis-password`, `kafka-config`).
func yamlProblem(_ error: any Error) -> String {
    switch error as? YamlError {
    case .scanner(_, let problem, let mark, _)?, .parser(_, let problem, let mark, _)?, .composer(_, let problem, let mark, _)?:
        return "line \(mark.line), column \(mark.column): \(problem)"
    case .reader(let problem, let offset, _, _)?:
        return "\(problem)\(offset.map { " at byte \($0)" } ?? "")"
    case .duplicatedKeysInMapping(let duplicates, let context)?:
        return "line \(context.mark.line), column \(context.mark.column): duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", "))"
    default:
        return "cannot parse it"
    }
}

/// Settings resolved flag > `TESSERA_*` variable > worker config file, remembering where each
/// came from (for `tessera config`). The file is YAML whose keys are the flags' names; a list
/// (`topology`, `kafka-config`) may be a YAML sequence, and `kafka-config` also a mapping.
struct Settings {
    struct Entry {
        var name: String
        var value: String
        var origin: String
    }

    private(set) var entries: [Entry] = []
    private var file: [String: [String]] = [:]
    private var used: Set<String> = []
    private let path: String?

    /// Flags and variables only.
    init() { path = nil }

    init(file path: String?) throws {
        self.path = path
        guard let path else { return }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read the config file \(path)") }
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch { throw ValidationError("\(path): not YAML: \(yamlProblem(error))") }
        guard let mapping = node?.mapping else {
            if node == nil { return }
            throw ValidationError("\(path): expected a mapping of setting names to values")
        }
        for (k, v) in mapping {
            guard let key = k.string else { continue }
            if let list = v.sequence {
                file[key] = list.compactMap(\.string)
            } else if let map = v.mapping {
                file[key] = map.compactMap { pair in pair.key.string.flatMap { k in pair.value.string.map { "\(k)=\($0)" } } }
            } else if let scalar = v.string {
                file[key] = [scalar]
            }
        }
    }

    mutating func record(_ name: String, _ value: String, _ origin: String) {
        entries.append(Entry(name: name, value: value, origin: origin))
    }

    func fileValue(_ name: String) -> String? { file[name]?.first }

    mutating func fileList(_ name: String) -> [String] {
        used.insert(name)
        return file[name] ?? []
    }

    /// A switch: on when its flag is given, or its variable or config key says 1, true or yes.
    mutating func isOn(_ flag: Bool, _ name: String) -> Bool {
        value(flag ? "true" : nil, name).map { ["1", "true", "yes"].contains($0.lowercased()) } == true
    }

    mutating func value(_ flag: String?, _ name: String) -> String? {
        used.insert(name)
        let key = "TESSERA_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
        if let flag {
            record(name, flag, "flag")
            return flag
        }
        if let v = ProcessInfo.processInfo.environment[key], !v.isEmpty {
            record(name, v, "env \(key)")
            return v
        }
        if let v = file[name]?.first {
            record(name, v, "file")
            return v
        }
        return nil
    }

    mutating func required(_ flag: String?, _ name: String) throws -> String {
        guard let v = value(flag, name) else {
            let variable = "TESSERA_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
            throw ValidationError("missing --\(name) (or \(variable)\(path == nil ? "" : ", or \(name): in the config file"))")
        }
        return v
    }

    mutating func number(_ flag: Double?, _ name: String) throws -> Double? {
        guard let text = value(flag.map { $0 == $0.rounded() ? String(Int($0)) : String($0) }, name) else { return nil }
        guard let v = Double(text) else { throw ValidationError("\(name) takes a number, got \(text)") }
        return v
    }

    /// Repeatable settings: the flags if any, else the variable (comma-separated), else the file's list.
    mutating func list(_ flags: [String], _ name: String) -> [String] {
        used.insert(name)
        let key = "TESSERA_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
        var values = flags, origin = "flag"
        if values.isEmpty, let v = ProcessInfo.processInfo.environment[key], !v.isEmpty {
            values = v.split(separator: ",").map(String.init)
            origin = "env \(key)"
        }
        if values.isEmpty, let v = file[name] {
            values = v
            origin = "file"
        }
        for v in values { record(name, v, origin) }
        return values
    }

    /// A key of the config file that no setting reads is a mistake (a typo would go unnoticed).
    func checkUnused() throws {
        let unknown = Set(file.keys).subtracting(used).subtracting(["redis-password", "redis-password-file"])
        guard unknown.isEmpty else {
            throw ValidationError("\(path ?? "config"): unknown settings \(unknown.sorted().joined(separator: ", ")) (keys are `tessera run` flag names)")
        }
    }
}
