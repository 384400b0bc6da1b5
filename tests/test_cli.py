"""``python -m fnnet``: the dispatcher's messages, --version, and argument errors that name the problem."""
import subprocess
import sys

import pytest

import fnnet
from fnnet import bench
from fnnet.__main__ import main


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
    assert "verify, train, bench" in err


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: python -m fnnet" in capsys.readouterr().err


def test_help_succeeds(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("verify", "train", "bench", "--version"))


def test_bench_bad_widths_say_what_is_expected(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--widths", "a"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --widths: expected comma-separated positive integers" in err
    assert "invalid _ints value" not in err


def test_python_m_fnnet_runs_as_a_program():
    run = subprocess.run([sys.executable, "-m", "fnnet", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("fnnet ")
