"""``python -m fnnet``: the command line, in :mod:`fnnet._cli`."""
from fnnet._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
