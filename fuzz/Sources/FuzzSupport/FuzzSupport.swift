import Foundation
import TesseraCore
import TesseraSource

/// Called from a fuzz executable's `LLVMFuzzerInitialize`, which libFuzzer runs before it reads
/// its own flags: `fuzz-NAME --write-seeds DIR DICT` writes the seed inputs into DIR and
/// libFuzzer's dictionary to DICT, then exits. Any other command line is left to libFuzzer.
public func writeSeedsIfAsked(seeds: () -> [(name: String, bytes: [UInt8])], dictionary: [String]) {
    let arguments = CommandLine.arguments
    guard arguments.count == 4, arguments[1] == "--write-seeds" else { return }
    do {
        let directory = URL(fileURLWithPath: arguments[2])
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for seed in seeds() {
            try Data(seed.bytes).write(to: directory.appendingPathComponent("seed-\(seed.name)"))
        }
        let entries = dictionary.enumerated().map { "token\($0.offset)=\(dictionaryEntry($0.element))" }
        try Data((entries.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: arguments[3]))
        exit(0)
    } catch {
        FileHandle.standardError.write(Data("cannot write the seeds: \(error)\n".utf8))
        exit(1)
    }
}

/// A token in libFuzzer's dictionary syntax: quoted, with `\`, `"` and non-printable bytes escaped.
func dictionaryEntry(_ token: String) -> String {
    var out = "\""
    for byte in token.utf8 {
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += "\\" + String(UnicodeScalar(byte))
        case 0x20..<0x7F: out.unicodeScalars.append(UnicodeScalar(byte))
        default: out += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16, uppercase: true)
        }
    }
    return out + "\""
}

/// The properties every structured-payload decoder keeps, checked for one input (a violation
/// stops the run with the input saved): exactly one row appended, or a rejection and nothing;
/// a fresh copy of `template` agrees with the long-lived decoder on the outcome and every value;
/// an accepted row has its event time inside years 0001–9999 and only valid UTF-8 strings.
public func checkDecode<D: EventDecoder>(_ decoder: inout D, template: D, batch: inout ColumnBatch, _ payload: UnsafeRawBufferPointer) {
    func row(_ b: ColumnBatch, _ i: Int) -> [Value?] { b.columns.map { $0.value(at: i) } }
    if batch.count >= 4_096 { batch.removeAll() }
    let before = batch.count
    let rejection = decoder.decode(payload, into: &batch)
    guard batch.count == before + (rejection == nil ? 1 : 0), batch.columns.allSatisfy({ $0.count == batch.count }) else {
        fatalError("batch went from \(before) to \(batch.count) rows (columns \(batch.columns.map(\.count))), rejection: \(String(describing: rejection))")
    }
    var fresh = template
    var freshBatch = ColumnBatch(schema: template.schema.types)
    let freshRejection = fresh.decode(payload, into: &freshBatch)
    guard freshRejection == rejection else {
        fatalError("a fresh decoder says \(String(describing: freshRejection)), the long-lived one \(String(describing: rejection))")
    }
    guard rejection == nil else { return }
    guard freshBatch.eventTimes[0] == batch.eventTimes[before], row(freshBatch, 0) == row(batch, before) else {
        fatalError("a fresh decoder reads \(row(freshBatch, 0)), the long-lived one \(row(batch, before))")
    }
    guard PartitionAggregator.validTimes.contains(batch.eventTimes[before]) else { fatalError("accepted an event time of \(batch.eventTimes[before]) µs") }
    for column in batch.columns where column.type == .string && column.value(at: before) != nil {
        guard column.withUTF8(at: before, { String(validating: $0, as: UTF8.self) != nil }) else { fatalError("accepted invalid UTF-8") }
    }
}
