"""``python -m fnnet``: the dispatcher's messages, --version, and argument errors that name the problem."""
import subprocess
import sys

import pytest

import fnnet
from fnnet._cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"fnnet {fnnet.__version__}"


def test_version_matches_the_installed_metadata():
    from importlib.metadata import PackageNotFoundError, version

    try:
        assert version("fnnet") == fnnet.__version__
    except PackageNotFoundError:
        pytest.skip("fnnet is not installed (run from a source tree)")


def test_unknown_command_is_named_on_one_line(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown command 'trian'" in err and "did you mean 'train'" in err
    assert "the commands are verify, train " in err


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: python -m fnnet {verify,train}" in capsys.readouterr().err


def test_help_succeeds(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("verify", "train", "--version"))


def test_bench_says_where_the_benchmarks_went(capsys):
    assert main(["bench"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("python -m fnnet bench: ") and "python -m benchmarks" in err


def test_verify_refusing_its_arguments_exits_2_with_the_message(monkeypatch, capsys):
    from fnnet import verify

    def refuse(argv):
        raise ValueError(f"unknown primitive(s): {', '.join(argv)}; known: relu, tanh")

    monkeypatch.setattr(verify, "main", refuse)
    assert main(["verify", "tanhh"]) == 2
    assert capsys.readouterr().err.strip() == (
        "python -m fnnet verify: unknown primitive(s): tanhh; known: relu, tanh"
    )


def test_python_m_fnnet_runs_as_a_program():
    run = subprocess.run([sys.executable, "-m", "fnnet", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("fnnet ")
