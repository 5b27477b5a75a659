import TesseraCore

/// The `where` language: comparisons of a field with a literal, combined with `and`, `or`, `not`
/// and parentheses.
///
///     status == "paid"
///     amount >= 10 and not (status in ["refunded", "cancelled"])
///     coupon != null
///
/// Literals are numbers, strings in double or single quotes, `true`, `false`; `== null` and
/// `!= null` test for a missing value. Fields must exist in the source and literals must match
/// their type. Errors carry the character offset in the expression.
///
/// An expression nests at most `maxNesting` levels of parentheses and `not`, and holds at most
/// `maxComparisons` comparisons: the parser and every later walk of the predicate (evaluation,
/// hashing, the checkpoint fingerprint) recurse once per level of the tree, so without limits a
/// long enough `where` (`((((…`, or `a > 1 and a > 1 and …`) overflows the stack instead of
/// being reported.
struct WhereParser {
    struct Failure: Error {
        var offset: Int
        var message: String
    }

    private enum Token: Equatable {
        case identifier(String)
        case number(String)
        case string(String)
        case op(String)
        case lparen, rparen, lbracket, rbracket, comma
        case end
    }

    private let scalars: [Unicode.Scalar]
    private var tokens: [(token: Token, offset: Int)] = []
    private var position = 0
    private let schema: Schema
    static let maxNesting = 64
    static let maxComparisons = 256
    private var nesting = 0
    private var comparisons = 0

    static func parse(_ text: String, schema: Schema) -> Result<Predicate, Failure> {
        var parser = WhereParser(text: text, schema: schema)
        do {
            try parser.tokenize()
            let p = try parser.parseOr()
            guard parser.current.token == .end else {
                throw Failure(offset: parser.current.offset, message: "unexpected \(parser.describe(parser.current.token)) in where")
            }
            return .success(p)
        } catch let f as Failure {
            return .failure(f)
        } catch {
            return .failure(Failure(offset: 0, message: "\(error)"))
        }
    }

    private init(text: String, schema: Schema) {
        scalars = Array(text.unicodeScalars)
        self.schema = schema
    }

    private var current: (token: Token, offset: Int) { tokens[position] }

    private mutating func tokenize() throws {
        var i = 0
        func isIdentStart(_ c: Unicode.Scalar) -> Bool { c == "_" || (c.properties.isAlphabetic && c.isASCII) }
        func isIdent(_ c: Unicode.Scalar) -> Bool { isIdentStart(c) || ("0"..."9").contains(c) }
        while i < scalars.count {
            let c = scalars[i]
            let start = i
            switch c {
            case " ", "\t", "\n", "\r": i += 1
            case "(": tokens.append((.lparen, i)); i += 1
            case ")": tokens.append((.rparen, i)); i += 1
            case "[": tokens.append((.lbracket, i)); i += 1
            case "]": tokens.append((.rbracket, i)); i += 1
            case ",": tokens.append((.comma, i)); i += 1
            case "=", "!", "<", ">":
                if i + 1 < scalars.count && scalars[i + 1] == "=" {
                    tokens.append((.op(String(c) + "="), i)); i += 2
                } else if c == "<" || c == ">" {
                    tokens.append((.op(String(c)), i)); i += 1
                } else {
                    throw Failure(offset: i, message: "'\(c)' is not an operator; use ==, !=, <, <=, >, >=")
                }
            case "\"", "'":
                var value = ""
                i += 1
                var closed = false
                while i < scalars.count {
                    if scalars[i] == "\\" && i + 1 < scalars.count {
                        value.unicodeScalars.append(scalars[i + 1]); i += 2; continue
                    }
                    if scalars[i] == c { closed = true; i += 1; break }
                    value.unicodeScalars.append(scalars[i]); i += 1
                }
                guard closed else { throw Failure(offset: start, message: "unterminated string in where") }
                tokens.append((.string(value), start))
            case "-", "+", "0"..."9", ".":
                var text = String(c)
                i += 1
                while i < scalars.count, ("0"..."9").contains(scalars[i]) || "._eE".unicodeScalars.contains(scalars[i])
                    || ((scalars[i] == "-" || scalars[i] == "+") && (scalars[i - 1] == "e" || scalars[i - 1] == "E")) {
                    text.unicodeScalars.append(scalars[i]); i += 1
                }
                tokens.append((.number(text), start))
            default:
                guard isIdentStart(c) else { throw Failure(offset: i, message: "unexpected character '\(c)' in where") }
                var text = ""
                while i < scalars.count && isIdent(scalars[i]) { text.unicodeScalars.append(scalars[i]); i += 1 }
                tokens.append((.identifier(text), start))
            }
        }
        tokens.append((.end, scalars.count))
    }

    private func describe(_ t: Token) -> String {
        switch t {
        case .identifier(let s): return "'\(s)'"
        case .number(let s): return "'\(s)'"
        case .string(let s): return "\"\(s)\""
        case .op(let s): return "'\(s)'"
        case .lparen: return "'('"
        case .rparen: return "')'"
        case .lbracket: return "'['"
        case .rbracket: return "']'"
        case .comma: return "','"
        case .end: return "end of expression"
        }
    }

    private mutating func advance() -> (token: Token, offset: Int) {
        defer { if position < tokens.count - 1 { position += 1 } }
        return tokens[position]
    }

    private func isKeyword(_ word: String) -> Bool {
        if case .identifier(let s) = current.token { return s == word }
        return false
    }

    private mutating func parseOr() throws -> Predicate {
        var left = try parseAnd()
        while isKeyword("or") {
            _ = advance()
            left = .or(left, try parseAnd())
        }
        return left
    }

    private mutating func parseAnd() throws -> Predicate {
        var left = try parseUnary()
        while isKeyword("and") {
            _ = advance()
            left = .and(left, try parseUnary())
        }
        return left
    }

    private mutating func parseUnary() throws -> Predicate {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= WhereParser.maxNesting else {
            throw Failure(offset: current.offset, message: "where nests more than \(WhereParser.maxNesting) levels of parentheses and 'not'")
        }
        if isKeyword("not") {
            _ = advance()
            return .not(try parseUnary())
        }
        if current.token == .lparen {
            _ = advance()
            let inner = try parseOr()
            guard current.token == .rparen else { throw Failure(offset: current.offset, message: "expected ')' in where, found \(describe(current.token))") }
            _ = advance()
            return inner
        }
        return try parseComparison()
    }

    private mutating func parseComparison() throws -> Predicate {
        comparisons += 1
        guard comparisons <= WhereParser.maxComparisons else {
            throw Failure(offset: current.offset, message: "where has more than \(WhereParser.maxComparisons) comparisons; test a field against many values with 'in [...]'")
        }
        let (token, offset) = advance()
        guard case .identifier(let name) = token, !["and", "or", "not", "in", "true", "false", "null"].contains(name) else {
            throw Failure(offset: offset, message: "expected a field name in where, found \(describe(token))")
        }
        guard let field = schema.index(of: name) else {
            let known = schema.names.joined(separator: ", ")
            throw Failure(offset: offset, message: "unknown field '\(name)' in where (the source has: \(known))")
        }
        let type = schema.types[field]
        if isKeyword("in") {
            _ = advance()
            guard current.token == .lbracket else { throw Failure(offset: current.offset, message: "expected '[' after 'in'") }
            _ = advance()
            var list: [Predicate.Literal] = []
            while true {
                list.append(try parseLiteral(for: name, type: type))
                if current.token == .comma { _ = advance(); continue }
                guard current.token == .rbracket else { throw Failure(offset: current.offset, message: "expected ',' or ']' in the list, found \(describe(current.token))") }
                _ = advance()
                break
            }
            return .isIn(field: field, list)
        }
        let (opToken, opOffset) = advance()
        guard case .op(let symbol) = opToken, let op = Predicate.CompareOp(rawValue: symbol) else {
            throw Failure(offset: opOffset, message: "expected a comparison (==, !=, <, <=, >, >=, in) after '\(name)', found \(describe(opToken))")
        }
        if isKeyword("null") {
            let at = advance().offset
            switch op {
            case .eq: return .isNull(field: field)
            case .ne: return .isNotNull(field: field)
            default: throw Failure(offset: at, message: "null can only be compared with == or !=")
            }
        }
        let literalOffset = current.offset
        let literal = try parseLiteral(for: name, type: type)
        if type == .bool, op != .eq, op != .ne {
            throw Failure(offset: literalOffset, message: "booleans can only be compared with == or !=")
        }
        return .compare(field: field, op, literal)
    }

    private mutating func parseLiteral(for name: String, type: ValueType) throws -> Predicate.Literal {
        let (token, offset) = advance()
        func mismatch(_ what: String) -> Failure {
            Failure(offset: offset, message: "'\(name)' is \(type.rawValue) and cannot be compared with \(what)")
        }
        switch token {
        case .string(let s):
            guard type == .string else { throw mismatch("a string") }
            return .string(s)
        case .number(let text):
            guard type == .int64 || type == .float64 else { throw mismatch("a number") }
            if let v = Int64(text) { return .int(v) }
            if let v = Double(text), v.isFinite { return .double(v) }
            throw Failure(offset: offset, message: "'\(text)' is not a number")
        case .identifier("true"), .identifier("false"):
            guard type == .bool else { throw mismatch("a boolean") }
            return .bool(token == .identifier("true"))
        default:
            throw Failure(offset: offset, message: "expected a literal (number, \"string\", true, false), found \(describe(token))")
        }
    }
}
