"""Build the course's notebooks from their sources, and run them.

Each chapter is one readable Python file, ``notebooks/src/NN_name.py``, in the
"percent" format: ``# %%`` starts a code cell, ``# %% [markdown]`` a Markdown cell
whose lines are comments (``# `` is stripped). This script turns each into
``notebooks/NN_name.ipynb`` and, with ``--execute``, runs it top to bottom in a
Jupyter kernel of this very Python, keeping the outputs. Adding a chapter is adding
its source file.

    python notebooks/build.py                      # build every notebook, no outputs
    python notebooks/build.py --execute            # build and run them all at full size (make notebooks)
    python notebooks/build.py --execute --size quick --out /tmp/nb 01   # one, quick, elsewhere
    python notebooks/build.py --check              # are the committed notebooks in sync with src/?

Needs nbformat (and nbclient and ipykernel to execute): ``pip install -e '.[notebooks]'``.
Outputs are tidied for reading and for diffs: a progress bar is transient, so what is
left of it (widgets; text bars that erased themselves) is dropped, and carriage
returns in a stream are resolved as a terminal would show them.
"""
import argparse
import json
import os
import re
import sys
import tempfile
import time

NOTEBOOKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(NOTEBOOKS)
SRC = os.path.join(NOTEBOOKS, "src")
KERNEL_NAME = "npnet-course"
_MARKER = re.compile(r"^# %%(.*)$")


def sources():
    """The chapters' source files, in the course's order: ``src/NN_*.py``."""
    return sorted(os.path.join(SRC, f) for f in os.listdir(SRC) if re.fullmatch(r"\d\d_\w+\.py", f))


def parse(text):
    """``[(kind, source)]`` from a percent-format file; kind is "code" or "markdown".

    Anything before the first ``# %%`` line is a header for readers of the file and
    is not a cell. Blank lines around a cell are dropped.
    """
    cells, kind, lines = [], None, []

    def flush():
        if kind is not None:
            body = "\n".join(lines).strip("\n")
            if body.strip():
                cells.append((kind, body))

    for line in text.splitlines():
        m = _MARKER.match(line)
        if m:
            flush()
            kind, lines = ("markdown" if "[markdown]" in m.group(1) else "code"), []
        elif kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise ValueError(f"a markdown cell's lines must be comments, got {line!r}")
            lines.append(line[2:] if line.startswith("# ") else line[1:])
        elif kind == "code":
            lines.append(line)
    flush()
    return cells


def build(path):
    """The notebook (an nbformat node) for one source file, without outputs."""
    import nbformat

    with open(path, encoding="utf-8") as f:
        cells = parse(f.read())
    stem = os.path.splitext(os.path.basename(path))[0]
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, (kind, source) in enumerate(cells):
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(source, id=f"{stem[:2]}-{i:02d}"))   # stable ids: no churn in diffs
    return nb


def kernel_env(size, answers):
    """The kernel's environment: this one, plus the notebook size, the answer mode, the
    repository on the path (so a source checkout runs without installing npnet), inline
    figures and one BLAS thread unless OPENBLAS_NUM_THREADS says otherwise."""
    env = dict(os.environ, NPNET_NOTEBOOK_SIZE=size, NPNET_NOTEBOOK_ANSWERS=answers)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, NOTEBOOKS, os.environ.get("PYTHONPATH", "")) if p)
    # One BLAS thread: seeded float32 runs then repeat exactly, and on a busy machine
    # OpenBLAS's spinning threads cost far more than they bring at these sizes.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"   # figures inline, whatever the shell says
    return env


def _kernel_manager(tmp):
    """A kernel manager whose only kernel is ipykernel on this very interpreter: never some
    other Python that a ``python3`` kernel spec elsewhere on the machine points to."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec = os.path.join(tmp, KERNEL_NAME)
    os.makedirs(spec)
    with open(os.path.join(spec, "kernel.json"), "w") as f:
        json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                   "display_name": "Python 3 (npnet course)", "language": "python"}, f)
    ksm = KernelSpecManager(kernel_dirs=[tmp])
    ksm.ensure_native_kernel = False
    # Where Unix sockets exist, the kernel talks over them, in this private folder, not over
    # TCP on localhost (where any local user could listen, and ipykernel warns so).
    local = {"transport": "ipc", "ip": os.path.join(tmp, "kernel")} if os.name == "posix" else {}
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, **local)


def execute(nb, *, size="full", answers="1", timeout=900, allow_errors=False, env=None):
    """Run ``nb`` in place in a fresh kernel (cwd: notebooks/) and tidy its outputs.

    ``env`` adds to (or overrides) the kernel's environment. Raises
    ``nbclient.exceptions.CellExecutionError`` on the first failing cell unless
    ``allow_errors``.
    """
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as tmp:
        client = NotebookClient(nb, km=_kernel_manager(tmp), timeout=timeout, allow_errors=allow_errors,
                                record_timing=False, store_widget_state=False,
                                resources={"metadata": {"path": NOTEBOOKS}})
        # cleanup_kc: shut the kernel down when the run ends, failed or not (nbclient leaves a
        # kernel it did not start itself running, and each holds its notebook's data).
        client.execute(cleanup_kc=True, env=dict(kernel_env(size, answers), **(env or {})))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    tidy(nb)
    return nb


def _resolve_cr(text):
    """What a terminal shows of text with carriage returns: each line's last rewrite."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def tidy(nb):
    """Drop what is left of progress bars; resolve carriage returns in streams; join
    consecutive pieces of one stream."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept, stderr = [], None
        for out in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                continue
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                # A text bar rewrites its line with carriage returns, in pieces that may
                # arrive between stdout's: resolve the cell's stderr as one stream.
                if stderr is None:
                    stderr = out
                    kept.append(out)
                else:
                    stderr["text"] += out["text"]
                continue
            kept.append(out)
        if stderr is not None:
            stderr["text"] = _resolve_cr(stderr["text"])
        merged = []
        for out in kept:
            if out.get("output_type") == "stream" and not (out["text"] if out["name"] == "stdout" else out["text"].strip()):
                continue        # what is left of an erased bar; a lone "\n" on stdout is print's line end
            if merged and out.get("output_type") == "stream" and merged[-1].get("output_type") == "stream" \
                    and merged[-1]["name"] == out["name"]:
                merged[-1]["text"] += out["text"]       # one block, as Jupyter shows it
                continue
            merged.append(out)
        cell["outputs"] = merged
    return nb


def out_of_sync(directory=NOTEBOOKS):
    """Names of committed notebooks whose cells differ from what their sources build."""
    import nbformat

    stale = []
    for path in sources():
        name = os.path.splitext(os.path.basename(path))[0] + ".ipynb"
        target = os.path.join(directory, name)
        if not os.path.exists(target):
            stale.append(f"{name} (missing)")
            continue
        built = [(c.cell_type, c.source) for c in build(path).cells]
        committed = [(c.cell_type, c.source) for c in nbformat.read(target, as_version=4).cells]
        if built != committed:
            stale.append(name)
    return stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="chapters to build, by number or file name (default: all)")
    parser.add_argument("--execute", action="store_true", help="run each notebook and keep its outputs")
    parser.add_argument("--size", choices=("quick", "full"), default="full")
    parser.add_argument("--answers", choices=("1", "wrong", ""), default="1",
                        help="the exercises run the reference answers (1, the default), a typical mistake "
                             "(wrong) or what the notebook holds ('')")
    parser.add_argument("--out", default=NOTEBOOKS, help="where to write the .ipynb files (default: notebooks/)")
    parser.add_argument("--check", action="store_true", help="only say whether the committed notebooks match src/")
    args = parser.parse_args(argv)
    import nbformat

    if args.check:
        stale = out_of_sync()
        for name in stale:
            print(f"{name} is out of date: run `python notebooks/build.py --execute` (make notebooks)")
        return 1 if stale else 0
    chosen = [p for p in sources() if not args.names or any(
        os.path.basename(p).startswith(n) or os.path.basename(p) == n for n in args.names)]
    if not chosen:
        parser.error(f"no chapter matches {args.names}; chapters: "
                     f"{', '.join(os.path.basename(p) for p in sources())}")
    os.makedirs(args.out, exist_ok=True)
    for path in chosen:
        name = os.path.splitext(os.path.basename(path))[0] + ".ipynb"
        nb = build(path)
        start = time.perf_counter()
        if args.execute:
            execute(nb, size=args.size, answers=args.answers)
        nbformat.write(nb, os.path.join(args.out, name))
        took = f" in {time.perf_counter() - start:.0f} s ({args.size})" if args.execute else ""
        print(f"{os.path.join(args.out, name)}{took}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
