import Foundation

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
