import CCurl
import TesseraCore

/// One libcurl easy handle (freed in `deinit`): blocking HTTP GETs with a timeout, optional basic
/// authentication and a CA file. Every libcurl call is in this file. Not Sendable: one thread uses it.
package final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    package struct Failure: Error {
        package var message: String
        /// No answer at all (connection refused, timeout, TLS): worth retrying.
        var unreachable: Bool
    }

    package init() throws(Failure) {
        CurlEasy.initialize
        guard let h = curl_easy_init() else { throw Failure(message: "libcurl could not make a handle", unreachable: false) }
        handle = h
    }

    deinit { curl_easy_cleanup(handle) }

    /// libcurl's global state, set up once before the first handle.
    private static let initialize: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// GETs `url`; returns the status and the body.
    package func get(_ url: String, user: String?, password: String?, caFile: String?, timeoutMillis: Int) throws(Failure) -> (status: Int, body: [UInt8]) {
        curl_easy_reset(handle)
        let sink = CurlSink()
        let context = Unmanaged.passRetained(sink)
        defer { context.release() }
        var code = tessera_curl_set_string(handle, CURLOPT_URL, url)
        if code == CURLE_OK { code = tessera_curl_set_long(handle, CURLOPT_NOSIGNAL, 1) }
        if code == CURLE_OK { code = tessera_curl_set_long(handle, CURLOPT_TIMEOUT_MS, timeoutMillis) }
        if code == CURLE_OK { code = tessera_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, timeoutMillis) }
        if code == CURLE_OK { code = tessera_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0) }
        if code == CURLE_OK, let user {
            code = tessera_curl_set_long(handle, CURLOPT_HTTPAUTH, 1)  // CURLAUTH_BASIC
            if code == CURLE_OK { code = tessera_curl_set_string(handle, CURLOPT_USERNAME, user) }
            if code == CURLE_OK { code = tessera_curl_set_string(handle, CURLOPT_PASSWORD, password ?? "") }
        }
        if code == CURLE_OK, let caFile { code = tessera_curl_set_string(handle, CURLOPT_CAINFO, caFile) }
        if code == CURLE_OK { code = tessera_curl_set_write(handle, curlWrite) }
        if code == CURLE_OK { code = tessera_curl_set_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque()) }
        guard code == CURLE_OK else { throw Failure(message: CurlEasy.text(code), unreachable: false) }
        let performed = curl_easy_perform(handle)
        guard performed == CURLE_OK else {
            throw Failure(message: CurlEasy.text(performed), unreachable: true)
        }
        var status = 0
        _ = tessera_curl_response_code(handle, &status)
        return (status, sink.bytes)
    }

    private static func text(_ code: CURLcode) -> String {
        String(cString: curl_easy_strerror(code))
    }
}

/// What a request received so far.
private final class CurlSink {
    var bytes: [UInt8] = []
}

/// libcurl's write callback: appends the received bytes to the request's sink.
private func curlWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let data, let context else { return 0 }
    let n = size * count
    Unmanaged<CurlSink>.fromOpaque(context).takeUnretainedValue().bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n))
    return n
}
