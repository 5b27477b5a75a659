import Foundation
import Testing
import TesseraCore
import TesseraOffline
import TesseraTestSupport
import TesseraTraining

@Suite("Timestamps and CSV")
struct FormatTests {
    @Test("RFC 3339 formatting matches Foundation and parses back, before and after 1970")
    func roundTrip() throws {
        var g = SeededGenerator(seed: 3)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        for _ in 0..<2_000 {
            let t = Micros.random(in: (-2_000_000_000 * Time.second)...(4_000_000_000 * Time.second), using: &g)
            let text = RFC3339.format(t)
            #expect(text.count == 27 && text.hasSuffix("Z"), "\(text)")
            #expect(Timestamps.parse(text) == t, "\(text)")
            let seconds = Time.floorDiv(t, Time.second)
            #expect(String(text.prefix(19)) + "Z" == formatter.string(from: Date(timeIntervalSince1970: Double(seconds))))
        }
    }

    @Test("RFC 3339 variants: offsets, space separator, lower case, no zone (UTC), nanoseconds truncated")
    func variants() {
        let t: Micros = 1_767_225_600 * Time.second + 123_456
        #expect(Timestamps.parse("2026-01-01T00:00:00.123456Z") == t)
        #expect(Timestamps.parse("2026-01-01 02:00:00.123456+02:00") == t)
        #expect(Timestamps.parse("2025-12-31t23:30:00.123456789-00:30") == t)
        #expect(Timestamps.parse("2026-01-01T00:00:00.123456") == t)
        #expect(Timestamps.parse("2026-01-01T00:00:00z") == t - 123_456)
        #expect(Timestamps.parse("2026-02-30T00:00:00Z") == nil)
        #expect(Timestamps.parse("2026-01-01") == nil)
        #expect(Timestamps.parse("2026-01-01T00:00:00.Z") == nil)
    }

    @Test("integer epochs: the unit follows the column's largest magnitude unless given")
    func epochs() throws {
        let directory = temporaryDirectory("epochs")
        let views = try testViews()
        let second: Int64 = 1_767_225_600
        for (values, unit, expected) in [
            ([second, second + 1], Timestamps.EpochUnit.auto, [second * Time.second, (second + 1) * Time.second]),
            ([second * 1000 + 5], .auto, [second * Time.second + 5_000]),
            ([second * 1_000_000 + 5], .auto, [second * Time.second + 5]),
            ([second * 1_000_000_000 + 5_999], .auto, [second * Time.second + 5]),
            ([5], .milliseconds, [5_000]),
        ] {
            let csv = "user_id,event_timestamp\n" + values.map { "1,\($0)\n" }.joined()
            try csv.write(toFile: "\(directory)/e.csv", atomically: true, encoding: .utf8)
            var options = HistoricalOptions()
            options.epochUnit = unit
            let frame = try HistoricalRetrieval(views: views, offlineDirectory: directory, options: options)
                .join(try Frame.read(path: "\(directory)/e.csv"), features: [FeatureReference(view: "user_view", feature: "n")])
            #expect(frame.columns[1].ints == expected, "\(values) \(unit)")
            #expect(frame.kinds[1] == .typed(.timestampMicros))
        }
    }

    @Test("CSV: quotes, commas, line breaks, CRLF, empty strings versus nulls survive a round trip")
    func csv() throws {
        let directory = temporaryDirectory("csv")
        let text = "a,\"b,c\",d\r\n\"x \"\"y\"\"\",\"1\n2\",\r\n,\"\",3\n"
        try text.write(toFile: "\(directory)/in.csv", atomically: true, encoding: .utf8)
        let frame = try Frame.read(path: "\(directory)/in.csv")
        #expect(frame.names == ["a", "b,c", "d"])
        #expect(frame.columns.map { $0.value(at: 0) } == [.string("x \"y\""), .string("1\n2"), nil])
        #expect(frame.columns.map { $0.value(at: 1) } == [nil, .string(""), .string("3")])
        try frame.write(to: "\(directory)/out.csv")
        let again = try Frame.read(path: "\(directory)/out.csv")
        #expect(again.names == frame.names && again.columns == frame.columns)
        // To Parquet, text columns are typed by inference: strings, strings, integers.
        try frame.write(to: "\(directory)/out.parquet")
        let reader = try ParquetFileReader(path: "\(directory)/out.parquet")
        #expect(reader.schema.fields.map(\.type) == [.string, .string, .int64])
        #expect(try reader.readAll()[2].value(at: 1) == .int(3))
    }
}
