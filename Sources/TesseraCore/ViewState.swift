/// A view's state as bytes (part of a partition checkpoint): the records, tile blocks, rosters and
/// sketch stores as they lie in memory, so saving and restoring are close to copies. The key index
/// is not saved; it is rebuilt from the keys.
extension ViewAggregator {
    func serialize(into w: inout ByteWriter) {
        w.write(Self.imageTag)
        w.write(spec.fingerprint)
        w.write(clock)
        w.write(epoch)
        w.write(UInt64(keys.count))
        if !keys.singleInt { keys.serializeEncodedKeys(into: &w) }
        records.serialize(into: &w)
        w.write(UInt64(rings.count))
        for r in rings { r.serialize(into: &w) }
        for (family, i) in kernels.all {
            switch family {
            case .count, .moments, .max, .min: break
            case .first: if kernels.firsts[i].dictionary >= 0 { dictionaries[kernels.firsts[i].dictionary].serialize(into: &w) }
            case .last: if kernels.lasts[i].dictionary >= 0 { dictionaries[kernels.lasts[i].dictionary].serialize(into: &w) }
            case .distinct: distinctStores[kernels.distincts[i].store].serialize(into: &w)
            case .quantile: quantileStores[kernels.quantiles[i].store].serialize(into: &w)
            }
        }
        w.write(array: openEntities)
    }

    /// What a serialized view starts with.
    static let imageTag = "view.2"

    private static func readTag(_ r: inout ByteReader) throws {
        let tag = try r.read(String.self)
        guard tag == imageTag else {
            throw StateFormatError(description: "state is corrupt: expected a view, found '\(tag.prefix(32))'")
        }
    }

    /// The fingerprint a serialized view starts with (to match it with its current definition).
    static func savedFingerprint(_ r: ByteReader) throws -> String {
        var r = r
        try readTag(&r)
        return try r.read(String.self)
    }

    /// Restores a view saved by `serialize`. `spec` is the current definition; features it adds
    /// to the saved ones start from empty state (`ViewSpec.reconciled(withSaved:)`).
    init(spec current: ViewSpec, from r: inout ByteReader) throws {
        try Self.readTag(&r)
        let fingerprint = try r.read(String.self)
        let spec = fingerprint == current.fingerprint ? current : try current.reconciled(withSaved: fingerprint)
        self.init(spec: spec)
        func corrupt(_ what: String) -> StateFormatError { StateFormatError(description: "view \(spec.name): \(what)") }
        // What was saved: the records' prefix, rings and kernels of the generations it knew.
        let savedGeneration = spec.features.filter { fingerprint.contains("\n\($0.name) = ") }.map(\.generation).max() ?? 0
        clock = try r.read()
        epoch = try r.read()
        let n = try r.count(limit: Int(UInt32.max - 1))
        if !keys.singleInt { try keys.restoreEncodedKeys(from: &r, count: n) }
        let savedStride = program.stride(upTo: savedGeneration)
        if savedStride == layout.stride {
            try records.restore(from: &r)
        } else {
            // Features were added: each saved record continues with the added fields, empty.
            var saved = Slab(itemBytes: savedStride)
            try saved.restore(from: &r)
            for id in 0..<saved.highWater {
                let record = records.pointer(records.allocate())
                record.copyMemory(from: layout.template, byteCount: layout.stride)
                record.copyMemory(from: saved.pointer(id), byteCount: savedStride)
            }
        }
        guard Int(records.highWater) == n, records.free.isEmpty else { throw corrupt("the records do not match the entities") }
        if keys.singleInt {
            for e in 0..<n {
                keys.insertRestored(int: records.pointer(UInt32(e)).load(fromByteOffset: ViewLayout.keyOffset, as: Int64.self))
                guard keys.count == e + 1 else { throw corrupt("an entity key appears twice") }
            }
        }
        let ringCount = try r.count(limit: 1024)
        let savedRings = rings.indices.filter { layout.ring($0).generation <= savedGeneration }
        guard ringCount == savedRings.count else { throw corrupt("ring count differs") }
        for i in savedRings { try rings[i].restore(from: &r) }
        for (family, i) in kernels.all where kernels.shape(family, i).generation <= savedGeneration {
            switch family {
            case .count, .moments, .max, .min: break
            case .first:
                let d = kernels.firsts[i].dictionary
                if d >= 0 { dictionaries[d] = try StringDictionary(from: &r) }
            case .last:
                let d = kernels.lasts[i].dictionary
                if d >= 0 { dictionaries[d] = try StringDictionary(from: &r) }
            case .distinct: try distinctStores[kernels.distincts[i].store].restore(from: &r)
            case .quantile: try quantileStores[kernels.quantiles[i].store].restore(from: &r)
            }
        }
        openEntities = try r.readArray()
        guard openEntities.allSatisfy({ Int($0) < n }) else { throw corrupt("open rows name unknown entities") }
        guard rings.allSatisfy({ $0.roster.entities(below: UInt32(n)) }) else { throw corrupt("a roster names unknown entities") }
        recordCore = records.core
        for r in rings.indices { buffers.rings[r] = rings[r].core }
        try validateRecords()
        // A sketched distinct count's values are read from its record (older states kept the
        // counts from before the sketch there).
        for d in kernels.distincts {
            for e in 0..<UInt32(n) { d.publishAll(records.pointer(e), store: &distinctStores[d.store]) }
        }
    }

    /// Checks that every reference a record holds points inside the restored storage, so that a
    /// checkpoint that passed its checksum but is inconsistent is refused instead of crashing.
    private func validateRecords() throws {
        func corrupt(_ e: UInt32, _ what: String) -> StateFormatError {
            StateFormatError(description: "view \(spec.name): entity \(e) has a corrupt \(what)")
        }
        for e in 0..<UInt32(keys.count) {
            let record = records.pointer(e)
            for (r, ring) in rings.enumerated() {
                let h = ring.header(record)
                guard ring.isValid(h) else { throw corrupt(e, "tile deque") }
                let starts = layout.ring(r).startOffsets
                for o in starts where o >= 0 {
                    guard record.load(fromByteOffset: o, as: UInt32.self) <= h.count else { throw corrupt(e, "window start") }
                }
                let view = ring.view(record)
                for p in 0..<view.count {
                    for q in kernels.quantiles where q.shape.ring == r {
                        guard q.isValid(tile: view.tile(p), store: quantileStores[q.store]) else { throw corrupt(e, "percentile tile") }
                    }
                }
            }
            for d in kernels.distincts where !d.isValid(record, store: distinctStores[d.store]) { throw corrupt(e, "distinct count") }
            for q in kernels.quantiles where !q.isValid(record: record, store: quantileStores[q.store]) { throw corrupt(e, "percentile window") }
        }
    }
}
