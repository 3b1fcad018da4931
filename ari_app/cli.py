"""`caseline` command line."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .config_files import ConfigError

DEFAULT_CONFIG = Path("config")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="caseline", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config folder")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="route calls (ARI app, FastAGI, ops API)")
    run.add_argument("--greet", action="store_true", help="answer, play a prompt, hang up")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from .main import run_forever
            return asyncio.run(run_forever(args.config, greet=args.greet))
    except ConfigError as e:
        print(f"caseline: config error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
