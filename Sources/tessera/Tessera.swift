import ArgumentParser

@main
struct Tessera: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tessera",
        abstract: "Streaming feature computation: windowed aggregates from event streams, online and offline.",
        subcommands: [Run.self, ConfigCommand.self, Serve.self, Validate.self, Get.self, Produce.self, Inspect.self, Demo.self, Historical.self, Compact.self, BackfillCommand.self, Verify.self, Describe.self, Stats.self, FeastRepo.self])
}
