// Public description of a Parquet file: schema, compression, errors, statistics.

/// The column types this target writes; reading maps every supported Parquet type onto one of them.
public enum ParquetType: String, Sendable, Hashable {
    case int32
    case int64
    case double
    case string
    case bool
    /// INT64 annotated TIMESTAMP(isAdjustedToUTC: true, MICROS) (plus the legacy TIMESTAMP_MICROS).
    case timestampMicros
}

public struct ParquetField: Sendable, Hashable {
    public var name: String
    public var type: ParquetType
    public var nullable: Bool

    public init(name: String, type: ParquetType, nullable: Bool = true) {
        self.name = name
        self.type = type
        self.nullable = nullable
    }
}

public struct ParquetSchema: Sendable, Hashable {
    public var fields: [ParquetField]

    public init(_ fields: [ParquetField]) {
        self.fields = fields
    }
}

public enum ParquetCompression: Sendable, Hashable {
    case none
    case zstd(level: Int32)
    case snappy
}

public struct ParquetError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Column-chunk statistics of one column in one row group, as stored in the footer.
public struct ParquetColumnStatistics: Sendable {
    /// Number of nulls; 0 when the file does not record it (see `nullCountKnown`).
    public var nullCount: Int
    /// Whether the file recorded `null_count` for this chunk.
    public var nullCountKnown: Bool
    /// Min/max of integer and timestamp columns (timestamps and dates in microseconds), when recorded.
    public var minInt: Int64?
    public var maxInt: Int64?
    /// Min/max of double (and float, decimal-free) columns, when recorded and not NaN.
    public var minDouble: Double?
    public var maxDouble: Double?

    public init(nullCount: Int, nullCountKnown: Bool = true, minInt: Int64? = nil, maxInt: Int64? = nil,
                minDouble: Double? = nil, maxDouble: Double? = nil) {
        self.nullCount = nullCount
        self.nullCountKnown = nullCountKnown
        self.minInt = minInt
        self.maxInt = maxInt
        self.minDouble = minDouble
        self.maxDouble = maxDouble
    }
}

public struct ParquetRowGroupInfo: Sendable {
    public var rowCount: Int
    /// One entry per schema field.
    public var columns: [ParquetColumnStatistics]

    public init(rowCount: Int, columns: [ParquetColumnStatistics]) {
        self.rowCount = rowCount
        self.columns = columns
    }
}
