"""Command line: ``python -m fnnet verify | train | bench``, and ``python -m fnnet --version``."""
from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence

COMMANDS = {
    "verify": ("fnnet.verify", "check every primitive's hand-written VJP and JVP"),
    "train": ("fnnet.train", "train an MLP with hand-written backprop"),
    "bench": ("fnnet.bench", "run the quick benchmarks"),
}


def _usage() -> str:
    lines = ["usage: python -m fnnet {verify,train,bench} [options]   (python -m fnnet COMMAND --help)", ""]
    lines += [f"  {name:<7} {doc}" for name, (_, doc) in COMMANDS.items()]
    lines += ["", "  --version  print fnnet's version"]
    return "\n".join(lines)


def _version() -> str:
    import fnnet

    return fnnet.__version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(_usage(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"fnnet {_version()}")
        return 0
    if argv[0] not in COMMANDS:
        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"python -m fnnet: unknown command {argv[0]!r}{hint}; the commands are "
            f"{', '.join(COMMANDS)} (python -m fnnet --help)",
            file=sys.stderr,
        )
        return 2
    import importlib

    module_name = COMMANDS[argv[0]][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"python -m fnnet {argv[0]}: not available in this version", file=sys.stderr)
        return 2
    try:
        return module.main(argv[1:])
    except ValueError as err:  # bad input the library names (an unknown primitive): a usage error, as argparse's
        print(f"python -m fnnet {argv[0]}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
