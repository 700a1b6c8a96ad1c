"""Write benchmark results: latest.json, a markdown table latest.md, a bar chart latest.png."""
import json
import math
import os
import platform


def machine_info():
    """CPU, BLAS, library versions and thread counts, for the report's header."""
    import numpy as np
    import torch

    import npnet
    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "npnet_threads": npnet.get_num_threads(),
            "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
            "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or platform.machine()
    try:
        from threadpoolctl import threadpool_info
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if blas:
            info["numpy_blas"] = f"{blas[0]['internal_api']} {blas[0].get('version', '')} ({blas[0].get('architecture', '')})".strip()
            info["numpy_threads"] = blas[0]["num_threads"]
    except ImportError:
        info["numpy_blas"] = "unknown (install threadpoolctl)"
    return info


def _fmt_time(s):
    if s is None:
        return "-"
    for unit, f in (("s", 1), ("ms", 1e3), ("us", 1e6)):
        if s * f >= 1:
            return f"{s * f:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


QUICK_NOTE = ("**Quick run** (tiny sizes, few repeats): it proves the benchmarks run and agree with torch. "
              "Its numbers are not the project's measurements and no target applies to them.")


def markdown(results, info, targets=None, *, quick=False):
    """The report as markdown tables; a quick run's report opens with :data:`QUICK_NOTE`
    and judges no target."""
    lines = [QUICK_NOTE, ""] if quick else []
    lines += [
        f"Machine: {info.get('cpu')}, {info.get('cpus')} CPUs; NumPy {info.get('numpy')} with "
        f"{info.get('numpy_blas')}, {info.get('numpy_threads')} threads"
        + (f" (OPENBLAS_THREAD_TIMEOUT={info['openblas_thread_timeout']})" if info.get("openblas_thread_timeout") else "")
        + f"; npnet's fast kernels, {info.get('npnet_threads', 1)} threads; torch {info.get('torch')}, "
        f"{info.get('torch_threads')} threads; Python {info.get('python')}.",
        "",
        "| group | case | shape | npnet | torch | ratio npnet/torch | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.get("ratio") is None:
            continue
        target = None if quick else r.get("target")
        met = "" if target is None else ("yes" if r["ratio"] <= target else "**no**")
        lines.append(
            f"| {r['group']} | {r['name']} | {r.get('shape', '')} | {_fmt_time(r.get('npnet_s'))} | "
            f"{_fmt_time(r.get('torch_s'))} | {r['ratio']:.2f} | {'' if target is None else f'<= {target}'} | {met} |"
        )
    if any(r.get("reference") for r in results):
        lines += ["", "Rows ending in \"fused NumPy loop, no library\" and \"... alone\" time plain NumPy "
                  "code written without npnet (in the npnet column), as reference points: what NumPy "
                  "itself allows on this machine, and the floor no NumPy implementation can go below."]
    if any("worked-example" in r["name"] for r in results if r.get("ratio") is not None):
        lines += ["", "\"Worked-example loop\" rows time the README's one-step example written as a loop "
                  "(forward, loss, backward, `opt.step`) over the same kind of DataLoader as `train_epoch`; "
                  "\"NPNET_KERNELS=plain\" rows time `train_epoch` in a child process started with the plain "
                  "kernels, its epochs interleaved with the others. \"/ its floor\" rows divide an epoch's time "
                  "by its floor row's."]
    extra = [r for r in results if r.get("ratio") is None]
    if extra:
        lines += ["", "| measurement | value | target | met |", "|---|---|---|---|"]
        for r in extra:
            target = None if quick else r.get("target")
            met = "" if target is None else ("yes" if r["value"] <= target else "**no**")
            if r.get("higher_is_better") and target is not None:
                met = "yes" if r["value"] >= target else "**no**"
            cmp = ">=" if r.get("higher_is_better") else "<="
            lines.append(f"| {r['name']} | {r['value']:.3g} {r.get('unit', '')} | "
                         f"{'' if target is None else f'{cmp} {target}'} | {met} |")
    return "\n".join(lines) + "\n"


def bar_chart(results, path, *, quick=False):
    """Horizontal bars of npnet / torch per case on a log scale, coloured by verdict, with a legend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.lines
    import matplotlib.patches
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    rows = [r for r in results if r.get("ratio") is not None]
    labels = [r["name"] if r["group"] == "train" else f"{r['name']} {r.get('shape', '')}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    fig, ax = plt.subplots(figsize=(12, 0.35 * len(rows) + 1.5))
    def target(r):
        return None if quick else r.get("target")
    colors = ["tab:gray" if r.get("reference") else "tab:green" if v <= (target(r) or 1.0) else "tab:red"
              for v, r in zip(ratios, rows)]
    ax.barh(range(len(rows)), ratios, color=colors)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    for i, r in enumerate(rows):
        if target(r):
            ax.plot([r["target"]] * 2, [i - 0.4, i + 0.4], color="black", ls="--", lw=0.8)
    lo, hi = min(ratios + [0.5]), max(ratios + [2.0])
    ax.set_xlim(lo / 1.5, hi * 1.5)
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20) if lo / 1.5 <= t <= hi * 1.5]
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel("time ratio npnet / torch (log scale; < 1: npnet faster; dashes: targets)")
    legend = [matplotlib.patches.Patch(color="tab:green", label="npnet: target met (no target: faster than torch)"),
              matplotlib.patches.Patch(color="tab:red", label="npnet: target missed (no target: slower than torch)"),
              matplotlib.patches.Patch(color="tab:gray", label="plain NumPy without npnet (reference point)")]
    if any(target(r) for r in rows):
        legend.append(matplotlib.lines.Line2D([], [], color="black", ls="--", lw=0.8, label="target"))
    ax.legend(handles=legend, loc="lower right", fontsize=8, framealpha=0.9)
    if quick:
        ax.set_title("Quick run: tiny sizes, no targets apply", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results, info, out_dir, *, quick=False):
    """latest.json (with ``"quick"``), latest.md and latest.png in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump({"quick": bool(quick), "machine": info, "results": results}, f, indent=2, default=float)
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(markdown(results, info, quick=quick))
    try:
        bar_chart(results, os.path.join(out_dir, "latest.png"), quick=quick)
    except ImportError:
        print("matplotlib is not installed: latest.png skipped")
    return out_dir


def geometric_mean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")
