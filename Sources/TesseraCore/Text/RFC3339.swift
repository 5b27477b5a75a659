/// RFC 3339 timestamps (`2026-01-01T12:00:00.123456Z`, `…+02:00`) to microseconds since the
/// epoch and back, with the proleptic Gregorian calendar arithmetic they need: the one parser
/// and formatter of the event decoder, training sets and every printed timestamp. Digits beyond
/// microseconds are truncated; `t`, `z` and a space separator are accepted.
public enum RFC3339 {
    /// What a timestamp without an offset means.
    public enum MissingOffset: Sendable {
        /// It is refused: event timestamps must say which instant they are.
        case reject
        /// It is UTC, as pandas and Feast take naive timestamps (entity frames, training sets).
        case utc
    }

    public static func parse(_ text: [UInt8], missingOffset: MissingOffset = .reject) -> Micros? {
        text.withUnsafeBufferPointer { parse($0, missingOffset: missingOffset) }
    }

    public static func parse(_ text: String, missingOffset: MissingOffset = .reject) -> Micros? {
        var copy = text
        return copy.withUTF8 { parse($0, missingOffset: missingOffset) }
    }

    public static func parse(_ text: UnsafeBufferPointer<UInt8>, missingOffset: MissingOffset = .reject) -> Micros? {
        var i = 0
        let n = text.count
        func digits(_ count: Int) -> Int? {
            guard i + count <= n else { return nil }
            var v = 0
            for k in 0..<count {
                let c = text[i + k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            i += count
            return v
        }
        func expect(_ a: UInt8, _ b: UInt8 = 0, _ c: UInt8 = 0) -> Bool {
            guard i < n, text[i] == a || (b != 0 && text[i] == b) || (c != 0 && text[i] == c) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2),
              expect(0x54, 0x74, 0x20), let hour = digits(2), expect(0x3A), let minute = digits(2), expect(0x3A),
              let second = digits(2),
              (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
              hour < 24, minute < 60, second < 61
        else { return nil }
        var micros = 0
        if i < n && text[i] == 0x2E {
            i += 1
            var scale = 100_000
            let start = i
            while i < n, text[i] >= 0x30 && text[i] <= 0x39 {
                micros += Int(text[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        var offset = 0
        if i == n {
            guard case .utc = missingOffset else { return nil }
        } else if expect(0x5A, 0x7A) {
            offset = 0
        } else if text[i] == 0x2B || text[i] == 0x2D {
            let sign = text[i] == 0x2D ? -1 : 1
            i += 1
            guard let oh = digits(2), expect(0x3A), let om = digits(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == n else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offset)
        return seconds * Time.second + Int64(micros)
    }

    /// Appends `2026-01-01T12:00:00.123456Z` (always six fractional digits, UTC).
    public static func format(_ t: Micros, into out: inout [UInt8]) {
        let seconds = Time.floorDiv(t, Time.second)
        let micros = Int(t - seconds * Time.second)
        let days = Int(Time.floorDiv(seconds, 86_400))
        let secondOfDay = Int(seconds - Int64(days) * 86_400)
        let (year, month, day) = civilFromDays(days)
        func put(_ v: Int, _ width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var v = v
            while divisor > 0 {
                out.append(UInt8(0x30 + v / divisor))
                v %= divisor
                divisor /= 10
            }
        }
        if year < 0 || year > 9999 {
            out.append(contentsOf: String(year).utf8)
        } else {
            put(year, 4)
        }
        out.append(0x2D); put(month, 2); out.append(0x2D); put(day, 2)
        out.append(0x54); put(secondOfDay / 3600, 2); out.append(0x3A); put(secondOfDay / 60 % 60, 2)
        out.append(0x3A); put(secondOfDay % 60, 2); out.append(0x2E); put(micros, 6); out.append(0x5A)
    }

    public static func format(_ t: Micros) -> String {
        var out: [UInt8] = []
        format(t, into: &out)
        return String(decoding: out, as: UTF8.self)
    }

    public static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    public static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The inverse of `daysFromCivil`.
    public static func civilFromDays(_ days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
