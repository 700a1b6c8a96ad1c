"""The fresh-machine path: `make test` obtains Fashion-MNIST itself and still runs where
it cannot, real-data tests skip through one guard with one reason, CI installs nothing
beforehand, and entry points that need torch say how to install it.

The Makefile runs here with a stand-in Python that records its arguments, so the order
of the steps is checked in a second, with no virtual environment built.
"""
import configparser
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

import reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> "$FAKE_LOG"
case "$1 $2" in
  "-m venv") mkdir -p "$3/bin" && cp "$0" "$3/bin/python" ;;
  "-m npnet") exit "${FAKE_DATA_STATUS:-0}" ;;
esac
exit 0
"""

FAKE_APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$FAKE_LOG"
exit 100
"""


def _script(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_make(tmp_path):
    """Runs a Makefile target with a stand-in Python (and apt-get that always fails);
    returns (process, the commands they received, in order)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = _script(tmp_path / "python3", FAKE_PYTHON)
    _script(bin_dir / "apt-get", FAKE_APT_GET)
    log = tmp_path / "log"
    log.write_text("")

    def run(target, data_status=0):
        env = {**os.environ, "FAKE_LOG": str(log), "FAKE_DATA_STATUS": str(data_status),
               "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("MAKEFLAGS", None)
        proc = subprocess.run(["make", "-C", ROOT, target, f"VENV={tmp_path / 'venv'}", f"PYTHON={python}"],
                              env=env, capture_output=True, text=True, timeout=120)
        commands = log.read_text().splitlines()
        log.write_text("")
        return proc, commands

    return run


def test_make_test_obtains_the_data_before_the_suite_and_installs_once(fake_make):
    proc, commands = fake_make("test")
    assert proc.returncode == 0, proc.stderr
    installs = [c for c in commands if " -m pip install" in c]
    assert installs == ["python -m pip install -q -e .[test]"]
    data = commands.index("python -m npnet data --quiet")
    assert data < commands.index("python -m pytest")
    # `make train` afterwards reuses the test install: the data step runs, nothing is installed.
    proc, commands = fake_make("data")
    assert proc.returncode == 0, proc.stderr
    assert commands == ["python -m npnet data --quiet"]


def test_make_test_runs_the_suite_when_the_data_cannot_be_had(fake_make):
    proc, commands = fake_make("test", data_status=1)
    assert proc.returncode == 0, proc.stderr
    assert commands.index("python -m npnet data --quiet") < commands.index("python -m pytest")
    assert any(c.startswith("apt-get") for c in commands)   # the same fallback as `make train`
    assert "Fashion-MNIST could not be obtained" in proc.stdout + proc.stderr


def test_test_extras_hold_everything_train_and_bench_need():
    # The Makefile's test install stands in for the train and bench installs.
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    extras = {name: set(cfg["options.extras_require"][name].split()) for name in ("test", "train", "bench")}
    assert extras["train"] <= extras["test"] and extras["bench"] <= extras["test"]


def test_ci_installs_nothing_before_make_test():
    text = open(os.path.join(ROOT, ".ci", "run")).read()
    commands = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert "apt-get" not in text and "dataset-fashion-mnist" not in text
    assert not any(re.search(r"\bpip3?\b|\binstall\b|npnet data|make data", c) for c in commands)
    assert "export HYPOTHESIS_PROFILE=ci" in commands and commands[-1] == "make test"


HIDE_DATA = """import npnet.data
npnet.data.SYSTEM_DIRS = ()   # as on a machine without Debian's dataset-fashion-mnist
"""


@pytest.mark.slow
def test_realdata_tests_skip_through_one_guard_with_one_reason(tmp_path):
    (tmp_path / "hide_fashion_mnist.py").write_text(HIDE_DATA)
    (tmp_path / "cache").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NPNET_DATA", "CI")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]), XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "realdata", "-rs", "-p", "hide_fashion_mnist",
                           "-p", "no:cacheprovider", "tests"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    skip_lines = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skip_lines) == 1, proc.stdout[-3000:]
    assert "conftest.py" in skip_lines[0] and "make test" in skip_lines[0]
    summary = proc.stdout.strip().splitlines()[-1]
    skipped = int(re.search(r"(\d+) skipped", summary).group(1))
    assert skipped >= 10 and not re.search(r"passed|failed|error", summary), summary
    assert f"SKIPPED [{skipped}]" in skip_lines[0]   # every one of them, through the same guard


def _run_without_torch(module, *args):
    code = (f"import sys, runpy; sys.modules['torch'] = None; sys.argv = [{module!r}, *{list(args)!r}]; "
            f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_python_m_reference_without_torch_names_the_install_command():
    proc = _run_without_torch("reference")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "torch" in line.lower() and "pip install -e '.[reference]'" in line
    assert reference.INSTALL == "pip install -e '.[reference]'"


def test_reference_names_without_torch_raise_one_clear_import_error():
    code = ("import sys; sys.modules['torch'] = None\nimport reference\n"
            "for name in ('compare', 'lockstep'):\n"
            "    try:\n        exec(f'from reference import {name}')\n"
            "    except reference.TorchMissingError as e:\n        print(isinstance(e, ImportError), e)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("True ") and reference.INSTALL in line for line in lines)


def test_python_m_reference_help_prints_usage_instead_of_the_table():
    proc = subprocess.run([sys.executable, "-m", "reference", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m reference")
    assert not re.search(r"\d+ rows, \d+ out of tolerance", proc.stdout)   # the table's last line
    proc = _run_without_torch("reference", "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr
