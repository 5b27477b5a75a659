import CHiredis
#if canImport(Glibc)
import Glibc
#endif

/// The one owner of a hiredis `redisContext`: every hiredis call Tessera makes is in this file.
/// It connects in `init`, frees the context in `deinit`, and never lends the pointer out. Not
/// thread-safe (hiredis contexts are not): one owner, one thread.
final class HiredisContext {
    private let context: UnsafeMutablePointer<redisContext>

    /// The result of reading one reply.
    enum Read {
        case reply(RedisReply)
        /// The connection failed; `HiredisContext.errorText` says why.
        case failed
    }

    /// Connects to `host:port` within `timeoutMs`, with that timeout on every later read and
    /// write and TCP keep-alive. Throws a retriable `RedisError` when it cannot.
    init(host: String, port: Int32, timeoutMs: Int) throws(RedisError) {
        let tv = timeval(tv_sec: timeoutMs / 1_000, tv_usec: (timeoutMs % 1_000) * 1_000)
        guard let c = redisConnectWithTimeout(host, port, tv) else {
            throw RedisError(message: "cannot allocate a Redis context", isRetriable: true)
        }
        if c.pointee.err != 0 {
            let message = Self.errorText(c)
            let code = c.pointee.err
            redisFree(c)
            throw RedisError(message: "cannot connect to \(host):\(port): \(message)", isRetriable: true, hiredisCode: code)
        }
        _ = redisSetTimeout(c, tv)
        _ = redisEnableKeepAlive(c)
        context = c
    }

    deinit { redisFree(context) }

    /// hiredis's error kind and text of the last failure (`REDIS_ERR_IO`, `REDIS_ERR_EOF`, …).
    var error: (code: Int32, text: String) { (context.pointee.err, Self.errorText(context)) }

    private static func errorText(_ c: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: c.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Sends already-encoded RESP commands; their replies are read by the next reads.
    ///
    /// Written to the socket from `resp` itself while hiredis's output buffer is empty (as it is
    /// between pipelines): hiredis would copy them into a buffer it frees once written, and a
    /// pipeline of a megabyte or more then costs a fresh mapping and its page faults every time.
    func append(_ resp: [UInt8]) -> Bool {
        guard sdslen(context.pointee.obuf) == 0 else {
            return resp.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { redisAppendFormattedCommand(context, $0.baseAddress, $0.count) }
            } == REDIS_OK
        }
        return resp.withUnsafeBytes { b in
            var sent = 0
            while sent < b.count {
                let n = send(context.pointee.fd, b.baseAddress! + sent, b.count - sent, Int32(MSG_NOSIGNAL))
                if n > 0 {
                    sent += n
                } else if n < 0 && errno == EINTR {
                    continue
                } else {
                    // As hiredis reports a failed write (EAGAIN: the timeout passed).
                    setError(n < 0 ? String(cString: strerror(errno)) : "Server closed the connection")
                    return false
                }
            }
            return true
        }
    }

    private func setError(_ text: String) {
        context.pointee.err = REDIS_ERR_IO
        withUnsafeMutableBytes(of: &context.pointee.errstr) { raw in
            let bytes = Array(text.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }

    /// Reads the next reply (flushing queued commands first), converted to Swift values.
    func readReply() -> Read {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { return .failed }
        defer { freeReplyObject(raw) }
        return .reply(Self.convert(raw.assumingMemoryBound(to: redisReply.self)))
    }

    /// Reads the next reply only to check it (without building Swift values for the common
    /// case): its text when it is an error, its value when it is an integer (else -1);
    /// `.failed` on a connection failure.
    func checkReply() -> (failed: Bool, error: String?, integer: Int64) {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { return (true, nil, -1) }
        defer { freeReplyObject(raw) }
        let reply = raw.assumingMemoryBound(to: redisReply.self).pointee
        if reply.type == REDIS_REPLY_INTEGER { return (false, nil, reply.integer) }
        guard reply.type == REDIS_REPLY_ERROR else { return (false, nil, -1) }
        return (false, String(decoding: UnsafeRawBufferPointer(start: reply.str, count: reply.len), as: UTF8.self), -1)
    }

    private static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let v = r.pointee
        switch v.type {
        case REDIS_REPLY_STRING: return .string(Array(UnsafeRawBufferPointer(start: v.str, count: v.len)))
        case REDIS_REPLY_STATUS: return .status(String(decoding: UnsafeRawBufferPointer(start: v.str, count: v.len), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: UnsafeRawBufferPointer(start: v.str, count: v.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(v.integer)
        case REDIS_REPLY_ARRAY: return .array((0..<v.elements).map { convert(v.element[$0]!) })
        default: return .null
        }
    }
}
