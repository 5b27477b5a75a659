import Foundation
import TesseraCore

/// An Avro schema (the writer's, from a schema registry), as the decoder needs it: types, record
/// fields in order, logical types. Named types may be referred to by name after their definition.
/// A nested type is held in a one-element array rather than an `indirect` case (whose boxes this
/// toolchain leaks under LeakSanitizer: the fuzzer found it).
enum AvroType: Sendable, Equatable {
    case null, boolean, int, long, float, double, bytes, string
    case record(name: String, fields: [AvroField])
    case enumeration(name: String, symbols: [String])
    case array([AvroType])
    case map([AvroType])
    case fixed(name: String, size: Int)
    case union([AvroType])
    /// A logical type on its underlying type (`timestamp-millis` on a long, `decimal` on bytes…).
    case logical(String, [AvroType], scale: Int)

    var description: String {
        switch self {
        case .null: return "null"
        case .boolean: return "boolean"
        case .int: return "int"
        case .long: return "long"
        case .float: return "float"
        case .double: return "double"
        case .bytes: return "bytes"
        case .string: return "string"
        case .record(let name, _): return "record \(name)"
        case .enumeration(let name, _): return "enum \(name)"
        case .array: return "array"
        case .map: return "map"
        case .fixed(let name, _): return "fixed \(name)"
        case .union(let branches): return "union [\(branches.map(\.description).joined(separator: ", "))]"
        case .logical(let name, let base, _): return "\(base[0].description) (\(name))"
        }
    }
}

struct AvroField: Sendable, Equatable {
    var name: String
    var type: AvroType
}

struct AvroSchemaError: Error, CustomStringConvertible, Sendable {
    var description: String
}

enum AvroSchema {
    /// The logical type standing for a record used inside its own definition.
    static let recursive = "tessera.recursive"

    /// Parses a schema's JSON text (Avro's specification: primitive names, or objects with
    /// `type`; unions as arrays; named types referable by full or short name).
    static func parse(_ text: String) throws(AvroSchemaError) -> AvroType {
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            throw AvroSchemaError(description: "the schema is not JSON: \(error.localizedDescription)")
        }
        var names: [String: AvroType] = [:]
        return try parse(json, namespace: nil, names: &names, depth: 0)
    }

    private static func parse(_ json: Any, namespace: String?, names: inout [String: AvroType], depth: Int) throws(AvroSchemaError) -> AvroType {
        guard depth < 64 else { throw AvroSchemaError(description: "the schema nests deeper than 64 levels") }
        if let name = json as? String { return try named(name, namespace: namespace, names: names) }
        if let branches = json as? [Any] {
            var types: [AvroType] = []
            for b in branches { types.append(try parse(b, namespace: namespace, names: &names, depth: depth + 1)) }
            guard !types.isEmpty else { throw AvroSchemaError(description: "an empty union") }
            return .union(types)
        }
        guard let object = json as? [String: Any], let typeField = object["type"] else {
            throw AvroSchemaError(description: "a schema must be a name, a union or an object with a type")
        }
        let base: AvroType
        if let type = typeField as? String {
            switch type {
            case "record", "error":
                guard let short = object["name"] as? String else { throw AvroSchemaError(description: "a record needs a name") }
                let (full, inner) = qualify(short, object["namespace"] as? String ?? namespace)
                // A record referring to itself (a recursive type) is not read: the placeholder says so.
                names[full] = .logical(AvroSchema.recursive, [.null], scale: 0)
                names[short] = names[full]
                guard let list = object["fields"] as? [Any] else { throw AvroSchemaError(description: "record \(full) needs fields") }
                var fields: [AvroField] = []
                for f in list {
                    guard let field = f as? [String: Any], let fieldName = field["name"] as? String, let fieldType = field["type"] else {
                        throw AvroSchemaError(description: "a field of record \(full) needs a name and a type")
                    }
                    fields.append(AvroField(name: fieldName, type: try parse(fieldType, namespace: inner, names: &names, depth: depth + 1)))
                }
                base = .record(name: full, fields: fields)
                names[full] = base
                names[short] = base
            case "enum":
                guard let short = object["name"] as? String, let symbols = object["symbols"] as? [String] else {
                    throw AvroSchemaError(description: "an enum needs a name and symbols")
                }
                let (full, _) = qualify(short, object["namespace"] as? String ?? namespace)
                base = .enumeration(name: full, symbols: symbols)
                names[full] = base
                names[short] = base
            case "array":
                guard let items = object["items"] else { throw AvroSchemaError(description: "an array needs items") }
                base = .array([try parse(items, namespace: namespace, names: &names, depth: depth + 1)])
            case "map":
                guard let values = object["values"] else { throw AvroSchemaError(description: "a map needs values") }
                base = .map([try parse(values, namespace: namespace, names: &names, depth: depth + 1)])
            case "fixed":
                guard let short = object["name"] as? String, let size = object["size"] as? Int, size >= 0 else {
                    throw AvroSchemaError(description: "a fixed needs a name and a size")
                }
                let (full, _) = qualify(short, object["namespace"] as? String ?? namespace)
                base = .fixed(name: full, size: size)
                names[full] = base
                names[short] = base
            default:
                base = try named(type, namespace: namespace, names: names)
            }
        } else {
            base = try parse(typeField, namespace: namespace, names: &names, depth: depth + 1)
        }
        if let logical = object["logicalType"] as? String {
            return .logical(logical, [base], scale: object["scale"] as? Int ?? 0)
        }
        return base
    }

    private static func qualify(_ name: String, _ namespace: String?) -> (full: String, namespace: String?) {
        if name.contains(".") { return (name, String(name[..<name.lastIndex(of: ".")!])) }
        guard let namespace, !namespace.isEmpty else { return (name, nil) }
        return ("\(namespace).\(name)", namespace)
    }

    private static func named(_ name: String, namespace: String?, names: [String: AvroType]) throws(AvroSchemaError) -> AvroType {
        switch name {
        case "null": return .null
        case "boolean": return .boolean
        case "int": return .int
        case "long": return .long
        case "float": return .float
        case "double": return .double
        case "bytes": return .bytes
        case "string": return .string
        default:
            if let t = names[name] ?? namespace.flatMap({ names["\($0).\(name)"] }) { return t }
            throw AvroSchemaError(description: "unknown type '\(name)'")
        }
    }
}
