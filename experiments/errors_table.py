"""Print docs/reference/errors.md's table: every case of tests/test_errors.py with the message fnnet raises.

    python experiments/errors_table.py > docs/reference/errors.md
"""
from __future__ import annotations

import importlib.util
import pathlib

import jax

jax.config.update("jax_enable_x64", True)


def _cases():
    """tests/test_errors.py's CASES, loaded from its file (the table's one source; no sys.path edit)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "tests" / "test_errors.py"
    spec = importlib.util.spec_from_file_location("fnnet_test_errors", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CASES


CASES = _cases()


def main() -> None:
    print("# Bad input: the errors fnnet raises\n")
    print("fnnet checks shapes, dtypes and structure in plain Python before anything is traced, so bad")
    print("input never surfaces as an XLA trace or a silent broadcast. Each row is a test in")
    print("`tests/test_errors.py` (which checks the type and that the message names the argument, what was")
    print("expected and what came); the messages below are what fnnet prints.\n")
    print("Regenerate: `python experiments/errors_table.py > docs/reference/errors.md`.\n")
    print("| case | exception | message |")
    print("|---|---|---|")
    for case_id, call, exc, _ in CASES:
        try:
            call()
            message = "(no error raised)"
        except Exception as e:  # noqa: BLE001 - recording what is raised
            message = str(e).replace("|", "\\|").replace("\n", " ")
            exc = type(e)
        print(f"| `{case_id}` | `{exc.__name__}` | {message} |")


if __name__ == "__main__":
    main()
