/// Kafka's default partitioner for keyed messages (the Java client's, and librdkafka's `murmur2`
/// and `murmur2_random`): the key's 32-bit murmur2 hash, made non-negative, modulo the partition
/// count. `tessera backfill` uses it to put events where a producer would have put them.
public enum KafkaPartitioner {
    public static func partition(key: some Collection<UInt8>, partitions: Int32) -> Int32 {
        Int32(bitPattern: murmur2(key) & 0x7fff_ffff) % partitions
    }

    /// MurmurHash2 with Kafka's seed, over the bytes in little-endian 4-byte blocks.
    public static func murmur2(_ key: some Collection<UInt8>) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        let bytes = Array(key)
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: bytes.count)
        let blocks = bytes.count / 4
        for b in 0..<blocks {
            let i = b * 4
            var k = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
            k &*= m
            k ^= k >> 24
            k &*= m
            h &*= m
            h ^= k
        }
        let tail = blocks * 4
        switch bytes.count - tail {
        case 3:
            h ^= UInt32(bytes[tail + 2]) << 16
            fallthrough
        case 2:
            h ^= UInt32(bytes[tail + 1]) << 8
            fallthrough
        case 1:
            h ^= UInt32(bytes[tail])
            h &*= m
        default:
            break
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return h
    }
}
