import CIntrinsics

/// The trailer that seals a serialized state: eight bytes after the image, so that a torn or
/// garbled checkpoint is refused rather than half-read.
///
/// Written as CRC-32C (one SSE 4.2 instruction per 8 bytes, where StableHash spends several
/// dependent multiplies) in the low four bytes under a tag in the high four. States saved by
/// earlier releases are sealed by `StableHash` over the image; they are still accepted.
public enum Seal {
    static let tag: UInt64 = 0x3243_5243 << 32  // "CRC2"

    /// CRC-32C of `bytes`, continuing from `crc`.
    public static func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return tessera_crc32c(crc, base, bytes.count)
    }

    /// The trailer of an image whose CRC-32C is `crc`.
    public static func trailer(crc: UInt32) -> [UInt8] {
        var w = ByteWriter()
        w.write(tag | UInt64(crc))
        return w.bytes
    }

    /// Whether `trailer` seals `image`: its CRC-32C, or an earlier release's `StableHash`.
    public static func verify(image: UnsafeBufferPointer<UInt8>, trailer: UInt64) -> Bool {
        if trailer & 0xffff_ffff_0000_0000 == tag, UInt64(crc32c(UnsafeRawBufferPointer(image))) == trailer & 0xffff_ffff {
            return true
        }
        return StableHash.hash(bytes: image) == trailer
    }
}
