"""The course's notebooks: built from notebooks/src/, executed headless in a real Jupyter
kernel at the quick size three ways (the reference answers with torch; the typical
mistakes without torch, which every check must catch; the exercises unwritten, as a
learner first runs them), the committed .ipynb in sync with their sources and with the
library's code, the README's notebook table in agreement with their outputs.

Executing needs nbformat, nbclient and ipykernel (the test extra has them); the
executions read Fashion-MNIST and are marked ``realdata``.
"""
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(REPO, "notebooks")
sys.path.insert(0, NOTEBOOKS)

import answers  # noqa: E402
import build  # noqa: E402
import exercises  # noqa: E402

nbformat = pytest.importorskip("nbformat")
CHAPTERS = [os.path.splitext(os.path.basename(p))[0] for p in build.sources()]
CHECK_CALL = re.compile(r'^check\("(\w+)", answer\("(\w+)", (\w+)\)\)$')


def _source(chapter):
    with open(os.path.join(build.SRC, chapter + ".py"), encoding="utf-8") as f:
        return f.read()


def _check_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and CHECK_CALL.match(c.source)]


def _text(cell):
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


# --------------------------------------------------------------------- the builder

def test_parse_splits_percent_cells():
    text = "# header, not a cell\n# %% [markdown]\n# # Title\n#\n# text\n\n# %%\nx = 1\n\n\n# %%\nprint(x)\n"
    assert build.parse(text) == [("markdown", "# Title\n\ntext"), ("code", "x = 1"), ("code", "print(x)")]


def test_parse_refuses_code_in_a_markdown_cell():
    with pytest.raises(ValueError, match="markdown"):
        build.parse("# %% [markdown]\n# fine\nx = 1\n")


def test_tidy_keeps_what_a_terminal_shows_of_a_progress_bar():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text="\rbar  10%"),
                    nbformat.v4.new_output("stream", name="stdout", text="epoch 1\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="\rbar 100%\r        \r"),
                    nbformat.v4.new_output("stream", name="stderr", text="a warning\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="epoch 2\n")]
    nb.cells.append(cell)
    build.tidy(nb)
    assert [(o.name, o.text) for o in cell.outputs] == [("stderr", "a warning\n"), ("stdout", "epoch 1\nepoch 2\n")]


def test_tidy_keeps_a_line_end_that_arrives_alone():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("...")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="first line"),
                    nbformat.v4.new_output("stream", name="stdout", text="\n"),     # print's end, flushed apart
                    nbformat.v4.new_output("stream", name="stdout", text="second line\n")]
    nb.cells.append(cell)
    build.tidy(nb)
    assert [(o.name, o.text) for o in cell.outputs] == [("stdout", "first line\nsecond line\n")]


def test_chapters_are_in_course_order():
    assert CHAPTERS[:6] == ["01_tensors_and_reductions", "02_softmax_regression", "03_cross_entropy_stability",
                            "04_mlp_backward", "05_gradients_and_initialization", "06_kfold_model_selection"]


def test_committed_notebooks_are_in_sync_with_their_sources():
    assert build.out_of_sync() == [], "run `make notebooks` (python notebooks/build.py --execute)"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_committed_notebook_carries_a_clean_full_run(chapter):
    nb = nbformat.read(os.path.join(NOTEBOOKS, chapter + ".ipynb"), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert _text(code[0]).startswith("size: full"), "committed outputs must come from a full-size run"
    assert all(c.execution_count is not None for c in code), "every cell ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    checks = _check_cells(nb)
    assert len(checks) >= 2, "two or three exercises per chapter"
    for cell in checks:
        assert _text(cell).startswith("✓"), cell.source
    assert os.path.getsize(os.path.join(NOTEBOOKS, chapter + ".ipynb")) < 400_000


def _shown_sources(nb):
    """``(path, code)`` for every kernel source a cell shows with ``show_source``."""
    shown = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            m = re.fullmatch(r"`([^`]+)`\n```python\n(.*)\n```", out.get("data", {}).get("text/markdown", ""), re.S)
            if m:
                shown.append(m.groups())
    return shown


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_committed_notebook_shows_the_library_as_it_is_now(chapter):
    # show_source reads the library when the notebook runs; the committed outputs must come
    # from a run of this very code, or a reader sees a kernel that no longer exists.
    nb = nbformat.read(os.path.join(NOTEBOOKS, chapter + ".ipynb"), as_version=4)
    shown = _shown_sources(nb)
    assert shown, "every chapter shows the library's code with show_source"
    for path, code in shown:
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            assert code in f.read(), f"{chapter} shows an old version of code in {path}: run `make notebooks`"


def _readme_notebook_rows():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"^\| \d+ \| `(\d\d_\w+)\.ipynb` \| (.*) \| ([^|]+) \|$", text, re.M)


def test_readme_lists_every_notebook_in_order():
    assert [row[0] for row in _readme_notebook_rows()] == CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_readme_numbers_are_the_committed_notebooks(chapter):
    # Every decimal number the README's notebook table quotes is one that notebook printed
    # (to the README's number of decimals), or a setting its cells hold (a learning rate).
    teaches = {name: what for name, what, _ in _readme_notebook_rows()}[chapter]
    nb = nbformat.read(os.path.join(NOTEBOOKS, chapter + ".ipynb"), as_version=4)
    printed = " ".join([_text(c) for c in nb.cells if c.cell_type == "code"] + [c.source for c in nb.cells])
    values = [float(v) for v in re.findall(r"\d+\.\d+", printed)]
    for quoted in re.findall(r"\d+\.\d+", teaches):
        places = len(quoted.split(".")[1])
        assert any(round(v, places) == float(quoted) for v in values), \
            f"README quotes {quoted} for {chapter}, which its outputs do not print"


# --------------------------------------------------------------------- the exercises

def test_every_exercise_has_a_check_an_answer_and_a_mistake():
    used = set()
    for chapter in CHAPTERS:
        for cell in _check_cells(build.build(os.path.join(build.SRC, chapter + ".py"))):
            name, again, function = CHECK_CALL.match(cell.source).groups()
            assert name == again == function, cell.source
            assert f"def {name}(" in _source(chapter) and "raise NotImplementedError" in _source(chapter)
            used.add(name)
    assert used == set(exercises.CHECKS) == set(answers.ANSWERS) == set(answers.WRONG)


@pytest.mark.parametrize("name", sorted(exercises.CHECKS))
def test_exercise_check_passes_the_answer_and_fails_the_mistake(name):
    assert isinstance(exercises.CHECKS[name](answers.ANSWERS[name]), str)
    with pytest.raises(AssertionError):
        exercises.CHECKS[name](answers.WRONG[name])


def test_an_unwritten_exercise_prints_a_reminder_and_does_not_fail(capsys):
    import course

    def stub(*args):
        raise NotImplementedError

    course.check("softmax", stub)
    assert "not written yet" in capsys.readouterr().out


def test_notebook_size_is_checked(monkeypatch):
    import importlib

    import course

    monkeypatch.setenv("NPNET_NOTEBOOK_SIZE", "huge")
    with pytest.raises(ValueError, match="NPNET_NOTEBOOK_SIZE"):
        importlib.reload(course)
    monkeypatch.setenv("NPNET_NOTEBOOK_SIZE", "quick")
    assert importlib.reload(course).pick(quick=1, full=2) == 1


# --------------------------------------------------------------------- executed in a kernel

@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("answers", ["1", ""], ids=["answered", "unwritten"])
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_notebook_runs_quick_in_a_kernel(chapter, answers):
    # With the reference answers every check passes; unwritten, as a learner's first Run All
    # goes, every cell still runs and each check prints its reminder instead of failing.
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = build.build(os.path.join(build.SRC, chapter + ".py"))
    build.execute(nb, size="quick", answers=answers, timeout=300)   # raises CellExecutionError on any cell error
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert _text(code[0]).startswith("size: quick")
    checks = _check_cells(nb)
    assert checks
    for cell in checks:
        name = CHECK_CALL.match(cell.source).group(1)
        expected = "✓" if answers else f"exercise {name}: not written yet"
        assert _text(cell).startswith(expected), (cell.source, _text(cell))


def _kernel_children():
    """Our child processes that are Jupyter kernels (Linux's /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"ipykernel_launcher" in cmdline:
            found.append(int(pid))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
@pytest.mark.parametrize("fails", [False, True], ids=["runs", "fails"])
def test_execute_shuts_its_kernel_down_quietly(fails, capfd):
    # Each run's kernel goes when the run ends, failed or not (the test suite runs two dozen
    # notebooks; kernels left behind would each hold their data until pytest exits), and
    # the kernel talks over a private socket, so ipykernel has no plain-TCP warning to print.
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import os\nprint(os.getpid())" + ("\n1 / 0" if fails else "")))
    before = _kernel_children()
    if fails:
        from nbclient.exceptions import CellExecutionError

        with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
            build.execute(nb, size="quick", timeout=60)
    else:
        build.execute(nb, size="quick", timeout=60)
    kernel = int(_text(nb.cells[0]).split()[0])
    assert kernel != os.getpid() and kernel not in before
    assert _kernel_children() == before
    assert "without encryption" not in capfd.readouterr().err


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_wrong_answer_fails_its_check_and_missing_torch_is_a_note(chapter, tmp_path):
    # Every chapter runs without torch (`pip install -e '.[notebooks]'` alone): each torch
    # comparison becomes a note, every other cell runs, and each exercise check, now on
    # npnet's side, still catches the typical mistake.
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    shadow = tmp_path / "torch"     # first on the kernel's path: `import torch` fails as if not installed
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    path = os.pathsep.join([str(tmp_path), build.kernel_env("quick", "wrong")["PYTHONPATH"]])
    nb = build.build(os.path.join(build.SRC, chapter + ".py"))
    build.execute(nb, size="quick", answers="wrong", allow_errors=True, env={"PYTHONPATH": path}, timeout=300)
    errors = {i: o.ename for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"}
    checks = {nb.cells.index(c) for c in _check_cells(nb)}
    assert checks and {i: "AssertionError" for i in checks} == errors
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("PyTorch is not installed" in _text(c) for c in code)
    gradient_checks = [c for c in code if "check_gradients(" in c.source]
    assert all("PyTorch is not installed" in _text(c) for c in gradient_checks)
    assert all("finite differences agree" in _text(c) for c in gradient_checks)
