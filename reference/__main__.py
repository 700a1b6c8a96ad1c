"""``python -m reference``: every npnet module and kernel against torch autograd, in float64 and float32.

Prints one row per case and dtype (the worst error relative to the quantity's
scale, and the tolerance ``4 * eps * sqrt(K)``; see ``reference.compare``), then
the rows of ``reference.checks_init_optim`` when that module exists, and exits
with status 1 if any row is out of tolerance. Seeds are fixed and torch runs
on one thread, so two runs print the same table.

Needs PyTorch: without it, one line names the install command and the exit
status is 2.
"""
import argparse
import sys

import numpy as np

from . import torch_available, torch_missing_message
from .report import Row, format_table

DTYPES = (np.float64, np.float32)


def module_cases():
    """(group, name, module, x, compare keyword arguments) for every module and kernel,
    from the ``cases`` of each ``reference.registry`` entry, in registration order."""
    from . import registry

    return [(e.group, *case) for e in registry.entries() for case in e.cases()]


def module_rows(cases=None):
    """One report row per module case (default: every registered one) and dtype."""
    from .compare import compare
    rows = []
    for group, name, module, x, kw in module_cases() if cases is None else cases:
        for dtype in DTYPES:
            rows.append(compare(module, x, dtype=dtype, **kw).row(group, name))
    return rows


def init_optim_rows():
    """Rows of ``reference.checks_init_optim`` (initializers and optimizers), or a note
    row when that module is not there yet."""
    try:
        from . import checks_init_optim
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.checks_init_optim":
            raise
        return [Row("init/optim", "skipped: reference/checks_init_optim.py not found", "-", ok=True)]
    return list(checks_init_optim.init_rows()) + list(checks_init_optim.optim_rows())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    if not torch_available():
        print(torch_missing_message("python -m reference"), file=sys.stderr)
        return 2
    import torch
    # One thread: these tensors are tiny, and waking a thread pool costs far more than the
    # arithmetic (about 10 ms against 4 us per op on a busy 2-core machine).
    torch.set_num_threads(1)
    rows = module_rows() + init_optim_rows()
    print(format_table(rows))
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows)} rows, {len(failed)} out of tolerance. Error: max |npnet - torch| / scale of the "
          f"quantity; tolerance 4 * eps(dtype) * sqrt(K), K the reduction length (see reference.compare).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
