import TesseraCore
import TesseraTopology

extension ViewStatistics {
    /// A view's, with its quality window and its baseline's bins for numeric features.
    init(view: FeatureView) {
        let edges: [[Double]?] = view.features.indices.map { f in
            guard view.spec.outputType(of: view.spec.features[f]) != .string, let b = view.quality.baseline?.feature(view.features[f].name) else { return nil }
            return b.edges
        }
        self.init(features: view.features.count, window: view.quality.window, hop: view.quality.hop, edges: edges)
    }
}
