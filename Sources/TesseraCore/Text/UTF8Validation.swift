/// Whether bytes are well-formed UTF-8 (the Unicode standard's table 3-7: no overlong forms, no
/// surrogates, nothing above U+10FFFF), without building a String. ASCII is checked eight bytes at
/// a time.
public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let n = bytes.count
        var i = 0
        while i < n {
            // ASCII runs, a word at a time.
            while i + 8 <= n, bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 { i += 8 }
            guard i < n else { return true }
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            func cont(_ k: Int, _ low: UInt8 = 0x80, _ high: UInt8 = 0xBF) -> Bool { i + k < n && bytes[i + k] >= low && bytes[i + k] <= high }
            switch b {
            case 0xC2...0xDF: guard cont(1) else { return false }; i += 2
            case 0xE0: guard cont(1, 0xA0), cont(2) else { return false }; i += 3
            case 0xE1...0xEC, 0xEE...0xEF: guard cont(1), cont(2) else { return false }; i += 3
            case 0xED: guard cont(1, 0x80, 0x9F), cont(2) else { return false }; i += 3
            case 0xF0: guard cont(1, 0x90), cont(2), cont(3) else { return false }; i += 4
            case 0xF1...0xF3: guard cont(1), cont(2), cont(3) else { return false }; i += 4
            case 0xF4: guard cont(1, 0x80, 0x8F), cont(2), cont(3) else { return false }; i += 4
            default: return false
            }
        }
        return true
    }
}
