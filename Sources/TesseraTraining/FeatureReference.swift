import Foundation
import TesseraTopology

/// An error of a point-in-time join or a compaction, worded for the person running it.
public struct HistoricalError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// One requested feature: `VIEW:FEATURE`, or `VIEW:*` for every feature of the view.
public struct FeatureReference: Sendable, Hashable, CustomStringConvertible {
    public var view: String
    /// A feature name, or `*`.
    public var feature: String

    public init(view: String, feature: String) {
        self.view = view
        self.feature = feature
    }

    public var description: String { "\(view):\(feature)" }

    /// Parses a comma-separated list: `user_stats:total_orders_1h,card_velocity:*`.
    public static func parse(list: String) throws -> [FeatureReference] {
        var out: [FeatureReference] = []
        for item in list.split(separator: ",", omittingEmptySubsequences: true) {
            let text = item.trimmingCharacters(in: .whitespaces)
            let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw HistoricalError("'\(text)' is not VIEW:FEATURE (or VIEW:* for every feature of a view)")
            }
            out.append(FeatureReference(view: String(parts[0]), feature: String(parts[1])))
        }
        guard !out.isEmpty else { throw HistoricalError("no features requested: pass VIEW:FEATURE,…") }
        return out
    }
}

/// The requested features resolved against the topologies, grouped by view in request order.
struct FeatureSelection {
    struct ViewRequest {
        var view: FeatureView
        /// Indices into `view.spec.features`, in request order.
        var features: [Int]
        /// The output column name of each requested feature.
        var outputNames: [String]
    }

    var views: [ViewRequest] = []
    /// The output columns in request order: (index into `views`, index into its `features`).
    var order: [(view: Int, slot: Int)] = []

    /// Expands `*`, drops repeated requests, names the output columns (`feature`, or `view__feature`
    /// with full names) and rejects names that collide with each other or with `inputNames`.
    init(_ references: [FeatureReference], views available: [FeatureView], fullNames: Bool, inputNames: [String]) throws {
        var byName: [String: FeatureView] = [:]
        for v in available where byName[v.name] == nil { byName[v.name] = v }
        var seen = Set<String>()
        var taken: [String: String] = Dictionary(inputNames.map { ($0, "the entity frame's column") }, uniquingKeysWith: { a, _ in a })
        for reference in references {
            guard let view = byName[reference.view] else {
                throw HistoricalError("no feature view '\(reference.view)' in the topologies (they have: \(byName.keys.sorted().joined(separator: ", ")))")
            }
            let wanted: [Int]
            if reference.feature == "*" {
                wanted = Array(view.spec.features.indices)
            } else {
                guard let i = view.spec.features.firstIndex(where: { $0.name == reference.feature }) else {
                    throw HistoricalError("feature view '\(view.name)' has no feature '\(reference.feature)' (it has: \(view.spec.features.map(\.name).joined(separator: ", ")))")
                }
                wanted = [i]
            }
            for i in wanted {
                let feature = view.spec.features[i].name
                guard seen.insert("\(view.name):\(feature)").inserted else { continue }
                let name = fullNames ? "\(view.name)__\(feature)" : feature
                if let other = taken[name] {
                    let advice = fullNames ? "rename the entity frame's column" : "pass --full-feature-names to name features VIEW__FEATURE"
                    throw HistoricalError("output column '\(name)' of \(view.name):\(feature) collides with \(other): \(advice)")
                }
                taken[name] = "\(view.name):\(feature)"
                if let k = views.firstIndex(where: { $0.view.name == view.name }) {
                    order.append((k, views[k].features.count))
                    views[k].features.append(i)
                    views[k].outputNames.append(name)
                } else {
                    order.append((views.count, 0))
                    views.append(ViewRequest(view: view, features: [i], outputNames: [name]))
                }
            }
        }
    }
}
