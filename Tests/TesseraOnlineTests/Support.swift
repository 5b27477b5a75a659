import Foundation
import Logging
import TesseraTopology

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let quiet: Logger = {
    var l = Logger(label: "test")
    l.logLevel = .critical
    return l
}()

func growth() throws -> Topology {
    try TopologyLoader.load(files: [packageRoot.appendingPathComponent("topologies/growth.yaml").path])[0]
}
