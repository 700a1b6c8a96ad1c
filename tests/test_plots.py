"""npnet.plots: what the plotting functions do with bad arguments.

Every argument of the plots, crossed with the bad values of tests/badinput.py
(its docstring says what the outcomes mean), then the rows the tables cannot
express.
"""
import os

import numpy as np
import pytest

from npnet import plots
from npnet import train as T
from badinput import (  # noqa: F401  (ctx is a fixture)
    Names, SKIP, ScalarTable, check_scalar_row, check_special_row, ctx, labels, special_params)


# =========================================================================== bad inputs

SCALARS = ScalarTable()
scalar = SCALARS.add

_hist = [T.EpochResult(1, 0.5, 0.8, 0.7, 1.0)]
scalar("plot_curves(history)", lambda v, c: plots.plot_curves(v, os.path.join(c.tmp, "c.png")), "history", "history")
scalar("plot_curves(path)", lambda v, c: plots.plot_curves(_hist, v), "path", "path", over={"str": SKIP})
scalar("plot_predictions(images)",
       lambda v, c: plots.plot_predictions(v, labels(2), labels(2), os.path.join(c.tmp, "p.png")), "images", "array",
       over={"array": Names(ValueError, "images")})
scalar("plot_predictions(ncols)",
       lambda v, c: plots.plot_predictions(np.zeros((2, 4, 4)), labels(2), labels(2), os.path.join(c.tmp, "p.png"),
                                           ncols=v), "ncols", "int>=1")


@pytest.mark.parametrize("s, bad, outcome", SCALARS.params())
def test_other_argument(ctx, s, bad, outcome):
    check_scalar_row(ctx, s, bad, outcome)


SPECIAL = [
    # id, lambda ctx: the call, outcome (REF rows give (call, reference) pairs)
    ("plot_predictions labels of the wrong length",
     lambda c: plots.plot_predictions(np.zeros((3, 4, 4)), labels(2), labels(3), os.path.join(c.tmp, "p.png")),
     Names(ValueError, "labels")),
]


@pytest.mark.parametrize("call, outcome", special_params(SPECIAL))
def test_special_row(ctx, call, outcome):
    check_special_row(ctx, call, outcome)
