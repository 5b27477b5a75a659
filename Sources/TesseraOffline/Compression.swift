// Page compression (zstd, snappy); the page CRC-32 is TesseraCore.PageChecksum.

import CSnappy
import CZstd

/// Largest uncompressed page this reader accepts; guards allocations against corrupt headers.
let maxPageSize = 1 << 30

/// A growable raw byte buffer reused across pages (no zero-filling, no per-page allocation).
final class RawBuffer {
    private(set) var pointer: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 64)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
    }

    deinit {
        pointer.deallocate()
    }

    /// Makes room for `count` bytes (contents are not preserved).
    func reserve(_ count: Int) {
        guard count > capacity else { return }
        pointer.deallocate()
        capacity = max(count, capacity * 2)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    }
}

/// Compresses pages for one writer; keeps a zstd context and an output buffer alive between pages.
final class PageCompressor {
    let codec: Int32
    private let level: Int32
    private var cctx: OpaquePointer?
    private let output = RawBuffer()

    init(_ compression: ParquetCompression) {
        switch compression {
        case .none:
            codec = Codec.uncompressed
            level = 0
        case .snappy:
            codec = Codec.snappy
            level = 0
        case .zstd(let l):
            codec = Codec.zstd
            level = max(ZSTD_minCLevel(), min(ZSTD_maxCLevel(), l))
        }
    }

    deinit {
        if let cctx { ZSTD_freeCCtx(cctx) }
    }

    /// The compressed form of `input`, valid until the next call (`input` itself when uncompressed).
    func compress(_ input: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        switch codec {
        case Codec.zstd:
            if cctx == nil { cctx = ZSTD_createCCtx() }
            guard let cctx else { throw ParquetError("zstd: cannot allocate a compression context") }
            output.reserve(ZSTD_compressBound(input.count))
            let written = ZSTD_compressCCtx(cctx, output.pointer, output.capacity, input.baseAddress, input.count, level)
            if ZSTD_isError(written) != 0 {
                throw ParquetError("zstd compression failed: \(String(cString: ZSTD_getErrorName(written)))")
            }
            return UnsafeRawBufferPointer(start: output.pointer, count: written)
        case Codec.snappy:
            output.reserve(snappy_max_compressed_length(input.count))
            var length = output.capacity
            let status = snappy_compress(input.baseAddress?.assumingMemoryBound(to: CChar.self), input.count,
                                         output.pointer.assumingMemoryBound(to: CChar.self), &length)
            guard status == SNAPPY_OK else { throw ParquetError("snappy compression failed") }
            return UnsafeRawBufferPointer(start: output.pointer, count: length)
        default:
            return input
        }
    }
}

/// Decompresses pages while reading column chunks; owns the output buffer.
final class PageDecompressor {
    private var dctx: OpaquePointer?
    private let output = RawBuffer()

    init() {}

    deinit {
        if let dctx { ZSTD_freeDCtx(dctx) }
    }

    static func check(codec: Int32) throws {
        switch codec {
        case Codec.uncompressed, Codec.snappy, Codec.zstd: return
        default:
            throw ParquetError(
                "codec \(Codec.name(codec)) is not supported; write the file with zstd, snappy or no compression")
        }
    }

    /// The `expected` uncompressed bytes of `input`: `input` itself when uncompressed, else a view of the
    /// decompressor's buffer that stays valid until the next call.
    func decompress(codec: Int32, _ input: UnsafeRawBufferPointer, expected: Int) throws -> UnsafeRawBufferPointer {
        guard expected >= 0, expected <= maxPageSize else {
            throw ParquetError("corrupt page: uncompressed size \(expected) is out of range")
        }
        switch codec {
        case Codec.uncompressed:
            guard input.count == expected else {
                throw ParquetError("corrupt page: \(input.count) bytes stored, the header says \(expected)")
            }
            return input
        case Codec.zstd:
            let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
            if declared == ZSTD_CONTENTSIZE_ERROR {
                throw ParquetError("corrupt page: not a zstd frame")
            }
            if declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > UInt64(expected) {
                throw ParquetError("corrupt page: zstd frame holds \(declared) bytes, the header says \(expected)")
            }
            if dctx == nil { dctx = ZSTD_createDCtx() }
            guard let dctx else { throw ParquetError("zstd: cannot allocate a decompression context") }
            output.reserve(expected)
            let n = ZSTD_decompressDCtx(dctx, output.pointer, expected, input.baseAddress, input.count)
            if ZSTD_isError(n) != 0 {
                throw ParquetError("corrupt page: zstd: \(String(cString: ZSTD_getErrorName(n)))")
            }
            guard n == expected else {
                throw ParquetError("corrupt page: zstd produced \(n) bytes, the header says \(expected)")
            }
        case Codec.snappy:
            guard let src = input.baseAddress?.assumingMemoryBound(to: CChar.self) else {
                throw ParquetError("corrupt page: empty snappy block")
            }
            var length = 0
            guard snappy_uncompressed_length(src, input.count, &length) == SNAPPY_OK, length == expected else {
                throw ParquetError("corrupt page: the snappy block does not hold \(expected) bytes")
            }
            output.reserve(expected)
            var outLength = expected
            let status = snappy_uncompress(src, input.count, output.pointer.assumingMemoryBound(to: CChar.self), &outLength)
            guard status == SNAPPY_OK, outLength == expected else {
                throw ParquetError("corrupt page: invalid snappy data")
            }
        default:
            try PageDecompressor.check(codec: codec)
        }
        return UnsafeRawBufferPointer(start: output.pointer, count: expected)
    }
}
