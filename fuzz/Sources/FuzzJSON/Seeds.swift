import TesseraCore
import TesseraTopology
import TesseraWorkload

/// Seed payloads: reference orders as the load generator writes them, and one well-formed event
/// per decoder under test that reaches its every field.
func jsonSeeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(name: String, bytes: [UInt8])] = []
    let workload = ReferenceWorkload(.init(events: 1_000, users: 50, skew: 1.1, span: Time.day, disorder: 0))
    for i in stride(from: 0, to: 1_000, by: 125) {
        var json: [UInt8] = []
        ReferenceWorkload.json(workload.order(i), into: &json)
        seeds.append(("order-\(i)", json))
    }
    let documents: [(String, String)] = [
        ("order-nested", #"{"extra": {"a": [1, 2.5e-3, {"b": null}], "c": "\"}"}, "user_id": 7, "amount": 1.25e2, "status": "p\u00e9\ud83d\ude00\n", "order_id": null, "event_timestamp": 1767225600123, "product_id": -0}"#),
        ("order-nulls", #"{"order_id": null, "user_id": null, "product_id": null, "amount": null, "status": null, "event_timestamp": 0}"#),
        ("payment", #"{"card_id": "c-1", "merchant_id": 42, "amount": 12.5, "currency": "EUR", "country": "DE", "approved": true, "authorized_at": "2026-01-01T12:00:00.123456Z", "ingested_at": "2026-01-01T12:00:01+01:00"}"#),
        ("all-types", #"{"id": 1, "score": 0.5, "label": "x\u00e9\t", "flag": false, "ts": 1767225600.25, "customer_id": 7, "customer_name": "\u0041"}"#),
        ("string-time", #"{"when": "2026-01-01 00:00:00.5-02:30", "user": "u", "n": 3e2}"#),
        ("micros", #"{"t": 1767225600000000}"#),
    ]
    for (name, text) in documents { seeds.append((name, Array(text.utf8))) }
    return seeds
}

/// Tokens libFuzzer splices into payloads: the field names the decoders look for, literals, number
/// and timestamp fragments, escapes.
let jsonDictionary: [String] = {
    var tokens = ["order_id", "user_id", "product_id", "amount", "status", "event_timestamp", "card_id", "merchant_id",
                  "currency", "country", "approved", "authorized_at", "ingested_at", "id", "score", "label", "flag", "ts",
                  "customer_id", "customer_name", "when", "user", "n", "t"].map { "\"\($0)\":" }
    tokens += ["true", "false", "null", "{}", "[]", "{\"\":", "\\u", "\\ud83d\\ude00", "\\udc00", "\\\"", "e+", "E-", "1e308", "1e309",
               "-0", "0.0", "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1767225600",
               "1767225600123", "253402300799", "-62135596800", "\"2026-01-01T00:00:00Z\"", "T23:59:60", ".999999999",
               "+14:00", "-00:00", "Z\"", "\u{C3}\u{A9}", "\u{F0}\u{9F}\u{98}\u{80}"]
    return tokens
}()
