/// JSON string literals (RFC 8259 §7): the one escaper behind every JSON Tessera writes — dead
/// letters, log lines, lookups, the health endpoints, event files read back as payloads.
public enum JSONText {
    /// `s` as a quoted JSON string: `"`, `\` and control characters escaped (`\n`, `\r`, `\t`
    /// by name, the others as `\u00XX`); everything else as it is, in UTF-8.
    public static func quoted(_ s: String) -> String {
        var out = "\""
        out.unicodeScalars.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = Array("0123456789abcdef".unicodeScalars)
                    out += "\\u00"
                    out.unicodeScalars.append(hex[Int(u.value >> 4)])
                    out.unicodeScalars.append(hex[Int(u.value & 0xF)])
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
