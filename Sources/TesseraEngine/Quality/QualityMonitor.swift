import Foundation
import TesseraCore
import TesseraTopology

/// Publishes the views' feature statistics and drift (docs/operations.md, "Feature quality"):
/// every view's statistics merged over the partitions this worker holds, as gauges labelled by
/// view, feature and window (`rolling`: the view's quality window, in event time; `all`: since
/// the partitions were assigned), and per feature with a baseline, PSI and the KS gap over the
/// rolling window. Runs on the worker thread, with the partition table's pipelines.
final class QualityMonitor {
    private let views: [FeatureView]
    private let metrics: WorkerMetrics
    static let quantiles: [(q: Double, label: String)] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99")]

    init(views: [FeatureView], metrics: WorkerMetrics) {
        self.views = views
        self.metrics = metrics
        for view in views {
            metrics.set(MetricName.psiThreshold, [("view", view.name)], view.quality.psiThreshold)
            metrics.set(MetricName.ksThreshold, [("view", view.name)], view.quality.ksThreshold)
            if let target = view.freshnessTarget {
                metrics.set(MetricName.freshnessTarget, [("view", view.name)], Double(target) / 1_000_000)
            }
        }
    }

    /// One view's statistics over the given pipelines: the rolling window and since the start.
    static func collect(_ view: FeatureView, from pipelines: [PartitionPipeline]) -> (window: [FeatureSummary], total: [FeatureSummary])? {
        var parts: [ViewStatistics] = []
        for p in pipelines {
            if let v = p.views.firstIndex(where: { $0.name == view.name }), v < p.statistics.count { parts.append(p.statistics[v]) }
        }
        guard let first = parts.first else { return nil }
        let newest = parts.map(\.newest).max()!
        var window = first.emptySummaries, total = first.emptySummaries
        for s in parts { s.collect(newest: newest, window: &window, total: &total) }
        return (window, total)
    }

    func publish(pipelines: [PartitionPipeline]) {
        for view in views {
            // No partition of the view here (any more): its figures are of no rows.
            let empty = ViewStatistics(view: view).emptySummaries
            let (window, total) = Self.collect(view, from: pipelines) ?? (empty, empty)
            for (f, feature) in view.features.enumerated() {
                for (label, s) in [("rolling", window[f]), ("all", total[f])] {
                    let labels = [("view", view.name), ("feature", feature.name), ("window", label)]
                    metrics.set(MetricName.featureRows, labels, Double(s.rows))
                    metrics.set(MetricName.featureNullRatio, labels, s.rows > 0 ? Double(s.nulls) / Double(s.rows) : .nan)
                    metrics.set(MetricName.featureMin, labels, s.values > 0 ? s.min : .nan)
                    metrics.set(MetricName.featureMax, labels, s.values > 0 ? s.max : .nan)
                    metrics.set(MetricName.featureMean, labels, s.mean ?? .nan)
                    metrics.set(MetricName.featureStddev, labels, s.stddev ?? .nan)
                    for (q, name) in Self.quantiles {
                        metrics.set(MetricName.featureQuantile, labels + [("quantile", name)], s.quantile(q) ?? .nan)
                    }
                }
                guard let baseline = view.quality.baseline?.feature(feature.name) else { continue }
                let s = window[f]
                let labels = [("view", view.name), ("feature", feature.name)]
                let enough = s.rows >= view.quality.minRows
                metrics.set(MetricName.featurePSI, labels, enough ? Drift.psi(baseline, counts: s.bins, nulls: s.nulls, rows: s.rows) : .nan)
                metrics.set(MetricName.featureKS, labels, enough && !s.bins.isEmpty ? Drift.ks(baseline, counts: s.bins) : .nan)
            }
        }
    }
}
