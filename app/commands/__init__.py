"""Command-line subcommands. Each module has `add_parser(subparsers)` that sets `func(args) -> int`."""
