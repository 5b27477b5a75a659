import ArgumentParser
import Foundation
import Logging
import TesseraTopology

/// Flags may also come from `TESSERA_<FLAG>` environment variables (`--offline-dir` →
/// `TESSERA_OFFLINE_DIR`); a flag on the command line wins.
func setting(_ flag: String?, _ name: String) -> String? {
    if let flag { return flag }
    let key = "TESSERA_" + name.uppercased().replacingOccurrences(of: "-", with: "_")
    return ProcessInfo.processInfo.environment[key].flatMap { $0.isEmpty ? nil : $0 }
}

func required(_ flag: String?, _ name: String) throws -> String {
    guard let value = setting(flag, name) else {
        throw ValidationError("missing --\(name) (or TESSERA_\(name.uppercased().replacingOccurrences(of: "-", with: "_")))")
    }
    return value
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
func kafkaProperties(flags: [String], file: String?) throws -> [(String, String)] {
    var properties: [(String, String)] = []
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
        guard let eq = flag.firstIndex(of: "=") else { throw ValidationError("--kafka-config takes KEY=VALUE, got \(flag)") }
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
func makeLogger(_ label: String, level: Logger.Level = .info) -> Logger {
    var logger = Logger(label: label) { label in StderrLogHandler(label: label, json: isatty(2) == 0) }
    logger.logLevel = setting(nil, "log-level").flatMap(Logger.Level.init(rawValue:)) ?? level
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
            var fields = ["\"time\":\"\(time)\"", "\"level\":\"\(event.level)\"", "\"message\":\(jsonText("\(event.message)"))"]
            for (k, v) in all.sorted(by: { $0.key < $1.key }) { fields.append("\(jsonText(k)):\(jsonText("\(v)"))") }
            line = "{" + fields.joined(separator: ",") + "}\n"
        } else {
            let meta = all.isEmpty ? "" : " " + all.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = "\(time) \(event.level) \(event.message)\(meta)\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }
}

func jsonText(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
