import Foundation
import Testing
import TesseraCore
import TesseraTestSupport

@Suite("Partition state: checkpoint, restore, refuse")
struct StateTests {
    static func stream(seed: UInt64, batches count: Int = 30, users: Int = 5) throws -> (ViewSpec, [ColumnBatch]) {
        var g = SeededGenerator(seed: seed)
        let spec = try WindowPropertyTests.randomSpec(&g, multiKey: seed % 2 == 0)
        var batches: [ColumnBatch] = []
        var now: Micros = 0
        for _ in 0..<count {
            var batch = ColumnBatch(schema: WindowPropertyTests.schema.types)
            for _ in 0..<Int.random(in: 1...40, using: &g) {
                now += Micros.random(in: 0...700, using: &g)
                let t = Bool.random(using: &g) ? now : now - Micros.random(in: 0...2_000, using: &g)
                batch.append(time: t, WindowPropertyTests.randomRow(&g, users: users))
            }
            batches.append(batch)
        }
        return (spec, batches)
    }

    static func flatten(_ e: EmissionBatch) -> [String] {
        (0..<e.count).map { i in
            let r = e.row(i)
            // Bit-exact: doubles by their bit pattern.
            let values = r.features.map { v -> String in
                if case .double(let d) = v { return String(d.bitPattern, radix: 16) }
                return String(describing: v)
            }
            return "\(r.time) \(r.key) \(values)"
        }
    }

    @Test("a run restored after every batch emits exactly what an uninterrupted run emits", arguments: 0..<12)
    func restoreIsInvisible(seed: Int) throws {
        let (spec, batches) = try Self.stream(seed: UInt64(seed))
        var straight = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var restored = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var a: [String] = [], b: [String] = []
        for batch in batches {
            straight.ingest(batch)
            a += Self.flatten(straight.views[0].emissions)
            straight.removeAllEmissions()
            restored = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: restored.serialized())
            restored.ingest(batch)
            b += Self.flatten(restored.views[0].emissions)
            restored.removeAllEmissions()
        }
        #expect(!a.isEmpty)
        #expect(a == b)
        let sameState = straight.serialized() == restored.serialized()
        #expect(sameState)
    }

    @Test("an entity's current row, computed again from the state, is its latest emission, created timestamp included; computing it changes nothing", arguments: 0..<12)
    func currentRowsAreTheLatest(seed: Int) throws {
        let (spec, batches) = try Self.stream(seed: UInt64(seed) &+ 500)
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var straight = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var latest: [String: String] = [:]
        var created: Micros = 0
        func rows(_ e: EmissionBatch, _ stamps: [Micros]) -> [String: String] {
            var out: [String: String] = [:]
            for (i, row) in Self.flatten(e).enumerated() { out["\(e.row(i).key)"] = "\(row) created \(stamps[i])" }
            return out
        }
        for (n, batch) in batches.enumerated() {
            core.ingest(batch)
            straight.ingest(batch)
            if n % 5 == 4 {
                // Idle: only tiles leaving windows change values.
                core.advance(to: core.streamTime + 5_000)
                straight.advance(to: straight.streamTime + 5_000)
            }
            let e = core.views[0].emissions
            #expect(Self.flatten(e) == Self.flatten(straight.views[0].emissions))
            let stamps = (0..<e.count).map { _ in created += 1; return created }
            core.recordCreated(view: 0, stamps)
            latest.merge(rows(e, stamps)) { $1 }
            core.removeAllEmissions()
            straight.removeAllEmissions()
            if n % 7 == 6 { core = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: core.serialized()) }
            var now: [String: String] = [:]
            let entities = core.views[0].entityCount
            for start in stride(from: 0, to: entities, by: 3) {
                let (current, stamps) = core.currentRows(view: 0, start..<start + 3)
                now.merge(rows(current, stamps)) { $1 }
            }
            #expect(now == latest, "batch \(n)")
            #expect(core.views[0].emissions.isEmpty)
        }
        #expect(latest.count > 2)
    }

    @Test("a state shares its memory with a checkpoint's copy until either is dropped or the original writes (what the online sample checks)")
    func sharedStateIsKnown() throws {
        let (spec, batches) = try Self.stream(seed: 77)
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        for b in batches.prefix(10) {
            core.ingest(b)
            core.removeAllEmissions()
        }
        var shared = core.isStateShared(view: 0)
        #expect(!shared)
        var copy: PartitionAggregator? = core
        shared = core.isStateShared(view: 0)
        #expect(shared)
        let moment = copy!.serialized()
        _ = core.currentRows(view: 0, 0..<1)   // writes the emission bookkeeping: the original copies its state
        shared = core.isStateShared(view: 0)
        #expect(!shared)
        #expect(copy!.serialized() == moment)
        copy = core
        shared = core.isStateShared(view: 0)
        #expect(shared)
        copy = nil
        shared = core.isStateShared(view: 0)
        #expect(!shared && copy == nil)
    }

    /// The closed rows of a run, each with the global index of the input row that closed it.
    static func closedRows(_ spec: ViewSpec, rows: [(Micros, [Value?])], cuts: [Int], restoreEvery: Int) throws -> [String] {
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var out: [String] = []
        var start = 0
        var batches = 0
        func collect(_ base: Int, _ count: Int) {
            let e = core.views[0].emissions
            for i in 0..<e.closedCount {
                let closer = Int(e.closers[i])
                out.append(Self.flatten(e)[i] + " closed by \(closer < count ? base + closer : base + count)")
            }
            core.removeAllEmissions()
        }
        for cut in cuts + [rows.count] where cut > start {
            var batch = ColumnBatch(schema: WindowPropertyTests.schema.types)
            for (t, values) in rows[start..<cut] { batch.append(time: t, values) }
            core.ingest(batch)
            collect(start, cut - start)
            start = cut
            batches += 1
            if restoreEvery > 0 && batches % restoreEvery == 0 {
                core = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: core.serialized())
            }
        }
        core.finish()
        collect(rows.count, 0)
        return out
    }

    @Test("closed rows are the same however the input is batched and restored", arguments: 0..<12)
    func batchIndependence(seed: Int) throws {
        var g = SeededGenerator(seed: UInt64(seed) &+ 77)
        let spec = try WindowPropertyTests.randomSpec(&g, multiKey: false)
        var rows: [(Micros, [Value?])] = []
        var now: Micros = 0
        for _ in 0..<600 {
            // Coarse times: many events of one entity share a stream time.
            now += [0, 0, 0, 250, 1_000, 3_000].randomElement(using: &g)!
            let t = Bool.random(using: &g) ? now : now - Micros.random(in: 0...1_500, using: &g)
            rows.append((t, WindowPropertyTests.randomRow(&g, users: 4)))
        }
        let one = try Self.closedRows(spec, rows: rows, cuts: Array(1..<rows.count), restoreEvery: 0)
        var cuts: [Int] = []
        var c = 0
        while true {
            c += Int.random(in: 1...50, using: &g)
            if c >= rows.count { break }
            cuts.append(c)
        }
        let other = try Self.closedRows(spec, rows: rows, cuts: cuts, restoreEvery: 3)
        #expect(!one.isEmpty)
        if let i = (0..<min(one.count, other.count)).first(where: { one[$0] != other[$0] }) {
            Issue.record("row \(i) differs:\n one row per batch: \(one[i])\n random batches:    \(other[i])")
        }
        #expect(one.count == other.count)
    }

    @Test("a saved feature changed, removed or reordered, or the keys changed: refused, saying what and how to go on")
    func definitionChanged() throws {
        let (spec, batches) = try Self.stream(seed: 3)
        var core = PartitionAggregator(views: [spec], allowedLateness: 0)
        core.ingest(batches[0])
        let saved = core.serialized()
        func refusal(_ changed: ViewSpec) -> String? {
            do {
                _ = try PartitionAggregator(views: [changed], allowedLateness: 0, restoring: saved)
                return nil
            } catch let error as StateMismatchError {
                #expect(error.description.contains("tessera backfill") && error.description.contains("rebuild the state"))
                return error.problems.joined(separator: "; ")
            } catch {
                Issue.record("unexpected \(error)")
                return nil
            }
        }
        var changed = spec
        changed.features[0].window = .sliding(length: 9_000, hop: 3_000)
        #expect(refusal(changed)?.contains("feature f0 changed") == true)
        var refiltered = spec
        refiltered.features[1].filter = .not(.isNull(field: 4))
        #expect(refusal(refiltered)?.contains("feature f1 changed") == true)
        var removed = spec
        removed.features.remove(at: 1)
        #expect(refusal(removed)?.contains("feature f1 was removed") == true)
        var reordered = spec
        reordered.features.swapAt(0, 1)
        #expect(refusal(reordered)?.contains("reordered") == true)
        let otherKeys = try ViewSpec(name: spec.name, schema: spec.schema, keyFields: spec.keyFields.count == 1 ? [0, 1] : [0], features: spec.features)
        #expect(refusal(otherKeys)?.contains("entity keys changed") == true)
    }

    @Test("features added to a saved view start from empty state while the saved ones carry on", arguments: 0..<8)
    func addedFeatures(seed: Int) throws {
        let (full, batches) = try Self.stream(seed: UInt64(seed) + 40)
        // Before the change the view had every other feature; the rest are added, in between.
        let kept = full.features.indices.filter { $0 % 2 == 0 }, added = full.features.indices.filter { $0 % 2 == 1 }
        let before = try ViewSpec(name: full.name, schema: full.schema, keyFields: full.keyFields, features: kept.map { full.features[$0] })
        let addedOnly = try ViewSpec(name: full.name, schema: full.schema, keyFields: full.keyFields, features: added.map { full.features[$0] })
        let half = batches.count / 2
        var core = PartitionAggregator(views: [before], allowedLateness: 1_000)
        var reference = PartitionAggregator(views: [before], allowedLateness: 1_000)   // never changed
        var fresh = PartitionAggregator(views: [addedOnly], allowedLateness: 1_000)    // the added features, from the change on
        var logs = (core: EmissionLog(), reference: EmissionLog(), fresh: EmissionLog())
        for batch in batches[..<half] {
            core.ingest(batch)
            reference.ingest(batch)
            logs.reference.collect(reference.views[0].emissions)
            core.removeAllEmissions()
            reference.removeAllEmissions()
        }
        core = try PartitionAggregator(views: [full], allowedLateness: 1_000, restoring: core.serialized())
        #expect(core.restoreNotes == ["view v: features \(added.map { "f\($0)" }.joined(separator: ", ")) are new: they start from empty state"])
        fresh.advance(to: core.streamTime)
        fresh.removeAllEmissions()
        for (i, batch) in batches[half...].enumerated() {
            core.ingest(batch)
            reference.ingest(batch)
            fresh.ingest(batch)
            logs.core.collect(core.views[0].emissions)
            logs.reference.collect(reference.views[0].emissions)
            logs.fresh.collect(fresh.views[0].emissions)
            core.removeAllEmissions()
            reference.removeAllEmissions()
            fresh.removeAllEmissions()
            if i % 4 == 3 {
                // Later restarts with the same topology keep each feature's generation.
                let bytes = core.serialized()
                core = try PartitionAggregator(views: [full], allowedLateness: 1_000, restoring: bytes)
                #expect(core.restoreNotes.isEmpty)
                #expect(core.serialized() == bytes)
            }
        }
        #expect(logs.core.count > 0)
        let empty = emptyRow(addedOnly)
        for (key, rows) in logs.core.rows {
            for time in Set(rows.map(\.time)) {
                let row = logs.core.asOf(key, time)!
                let carried = logs.reference.asOf(key, time) ?? emptyRow(before)
                let started = logs.fresh.asOf(key, time) ?? empty
                for (j, f) in kept.enumerated() where !agree(row[f], carried[j], aggregate: full.features[f].aggregate) {
                    Issue.record("\(key) at \(time): saved feature f\(f) is \(String(describing: row[f])), uninterrupted \(String(describing: carried[j]))")
                }
                for (j, f) in added.enumerated() where !agree(row[f], started[j], aggregate: full.features[f].aggregate) {
                    Issue.record("\(key) at \(time): added feature f\(f) is \(String(describing: row[f])), from empty \(String(describing: started[j]))")
                }
            }
        }
    }

    @Test("views matched by name: an added view starts empty, a removed one is dropped")
    func viewsAddedAndRemoved() throws {
        let (a, batches) = try Self.stream(seed: 7)
        var b = a
        b.name = "w"
        var core = PartitionAggregator(views: [a], allowedLateness: 1_000)
        for batch in batches.prefix(5) { core.ingest(batch) }
        let restored = try PartitionAggregator(views: [b, a], allowedLateness: 1_000, restoring: core.serialized())
        #expect(restored.restoreNotes == ["view w is new: it starts from empty state (`tessera backfill` computes its history)"])
        #expect(restored.views[1].entityCount == core.views[0].entityCount && restored.views[0].entityCount == 0)
        let back = try PartitionAggregator(views: [a], allowedLateness: 1_000, restoring: restored.serialized())
        #expect(back.restoreNotes == ["view w is no longer defined: its saved state is dropped"])
        #expect(back.serialized() == core.serialized())
    }

    @Test("truncated or garbled state is an error, never a crash", arguments: 0..<40)
    func corrupt(seed: Int) throws {
        let (spec, batches) = try Self.stream(seed: 5)
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        for batch in batches.prefix(10) { core.ingest(batch) }
        var bytes = core.serialized()
        var g = SeededGenerator(seed: UInt64(seed))
        if seed % 2 == 0 {
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &g)))
        } else {
            let i = Int.random(in: 0..<bytes.count, using: &g)
            bytes[i] ^= UInt8.random(in: 1...255, using: &g)
        }
        #expect(throws: StateFormatError.self) {
            _ = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: bytes)
        }
    }

    @Test("the seal is CRC-32C; a state sealed by an earlier release (StableHash) still loads")
    func seal() throws {
        let check = Array("123456789".utf8)
        #expect(check.withUnsafeBytes { Seal.crc32c($0) } == 0xE306_9283)
        let whole = check.withUnsafeBytes { Seal.crc32c($0) }
        let split = check.withUnsafeBytes { b in Seal.crc32c(UnsafeRawBufferPointer(rebasing: b[4...]), continuing: Seal.crc32c(UnsafeRawBufferPointer(rebasing: b[..<4]))) }
        #expect(split == whole)

        let (spec, batches) = try Self.stream(seed: 3)
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        for batch in batches { core.ingest(batch) }
        let image = core.image()
        var old = ByteWriter()
        old.write(image.bytes.withUnsafeBufferPointer { StableHash.hash(bytes: $0) })
        let restored = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: image.bytes + old.bytes)
        #expect(restored.serialized() == core.serialized())
        #expect(core.serialized() == image.bytes + image.seal())
    }

    /// Keeps what it is handed, and how many pieces.
    final class Collector: ByteSink {
        var bytes: [UInt8] = []
        var pieces = 0
        func take(_ b: UnsafeRawBufferPointer) {
            bytes.append(contentsOf: b)
            pieces += 1
        }
    }

    @Test("an image streamed to a sink is the image built in memory, of the length counted beforehand", arguments: 0..<4)
    func streamedImages(seed: Int) throws {
        let (spec, batches) = try Self.stream(seed: UInt64(seed) &+ 700, batches: 120, users: 400)
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        for (i, batch) in batches.enumerated() {
            core.ingest(batch)
            core.removeAllEmissions()
            guard i % 30 == 29 else { continue }
            let sink = Collector()
            let length = core.write(imageTo: sink)
            #expect(sink.bytes == core.image().bytes)
            #expect(length == sink.bytes.count && core.write(imageTo: ByteCounter()) == length)
            let restored = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: sink.bytes + Seal.trailer(crc: sink.bytes.withUnsafeBytes { Seal.crc32c($0) }))
            #expect(restored.serialized() == core.serialized())
        }
    }

    @Test("a copy imaged on another thread while the original keeps aggregating is the state of its moment; restored, it goes on exactly", arguments: 0..<6)
    func imagedWhileAggregating(seed: Int) throws {
        // Enough entities that the slabs grow several chunks and the copy shares all of them.
        let (spec, batches) = try Self.stream(seed: UInt64(seed) &+ 900, batches: 160, users: 400)
        var core = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var witness = PartitionAggregator(views: [spec], allowedLateness: 1_000)
        var next = 0
        func run(_ a: inout PartitionAggregator, _ range: Range<Int>) -> [String] {
            var out: [String] = []
            for b in range {
                a.ingest(batches[b])
                out += Self.flatten(a.views[0].emissions)
                a.removeAllEmissions()
            }
            return out
        }
        for cut in [10, 40, 90, 130] {
            _ = run(&core, next..<cut)
            _ = run(&witness, next..<cut)
            next = cut
            // The checkpoint's copy, imaged by another thread as the snapshot thread does, while
            // this one aggregates the next batches into the original.
            let copy = core
            let imaged = Box()
            let go = DispatchSemaphore(value: 0)
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                go.wait()
                imaged.set(copy.image())
                done.signal()
            }
            thread.start()
            _ = run(&core, next..<next + 3)
            go.signal()
            let after = run(&core, next + 3..<min(next + 20, batches.count))
            done.wait()
            let image = try #require(imaged.get())
            let expected = witness.serialized()
            #expect(image.bytes + image.seal() == expected)
            // Restored from the image, the next batches give what the original gave.
            var restored = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: image.bytes + image.seal())
            var replayed = run(&restored, next..<next + 3)
            replayed += run(&restored, next + 3..<min(next + 20, batches.count))
            var original = try PartitionAggregator(views: [spec], allowedLateness: 1_000, restoring: expected)
            let straight = run(&original, next..<min(next + 20, batches.count))
            #expect(!straight.isEmpty)
            #expect(replayed == straight)
            #expect(Array(straight.suffix(after.count)) == after)
            #expect(restored.serialized() == core.serialized())
            witness = original
            next = min(next + 20, batches.count)
        }
    }

    /// A value handed from one thread to another.
    final class Box: @unchecked Sendable {  // guarded by `lock`
        private let lock = NSLock()
        private var image: PartitionAggregator.Image?
        func set(_ i: PartitionAggregator.Image) { lock.withLock { image = i } }
        func get() -> PartitionAggregator.Image? { lock.withLock { image } }
    }
}
