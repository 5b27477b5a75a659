import ArgumentParser

@main
struct Tessera: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Streaming feature computation: windowed aggregates from event streams, online and offline.",
        subcommands: [Validate.self, Demo.self])
}
