"""Command line: ``python -m fnnet verify | train | bench``."""
from __future__ import annotations

import sys

COMMANDS = {
    "verify": ("fnnet.verify", "check every primitive's hand-written VJP and JVP"),
    "train": ("fnnet.train", "train an MLP with hand-written backprop"),
    "bench": ("fnnet.bench", "run the quick benchmarks"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = ["usage: python -m fnnet {verify,train,bench} [options]", ""]
        lines += [f"  {name:<7} {doc}" for name, (_, doc) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    import importlib

    module_name = COMMANDS[argv[0]][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"python -m fnnet {argv[0]}: not available in this version", file=sys.stderr)
        return 2
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
