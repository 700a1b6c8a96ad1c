"""Studies: small experiments that each teach one fact about training, with the numbers to show it.

Each study is a module with three functions:

- ``run(*, quick=False, seed=0, ...)`` measures and returns a result dataclass;
  it never prints. ``quick`` shrinks it to seconds (the size the tests use).
- ``table(result) -> str`` the numbers as a plain-text table.
- ``plot(result, path)`` writes a PNG (matplotlib is imported only here).
- optionally ``csv_rows(result) -> (header, rows)``: the measurement in full, which
  ``npnet study`` also writes as ``NAME.csv``.

From the command line: ``npnet study NAME [--quick] [--seed N] [--out DIR]``.

=====================  ==================================  ========================================
command name           module                              teaches
=====================  ==================================  ========================================
``softmax-stability``  :mod:`npnet.studies.stability`       naive softmax/cross-entropy overflow; log-sum-exp never does
``vanishing``          :mod:`npnet.studies.vanishing`       gradients shrink or grow geometrically with depth
``symmetry``           :mod:`npnet.studies.symmetry`        constant init keeps hidden units identical
``init``               :mod:`npnet.studies.initialization`  the init scale sets the signal and the learning speed
``kfold``              :mod:`npnet.studies.kfold`           k-fold cross-validation to choose a setting
``batchnorm``          :mod:`npnet.studies.batchnorm`       BatchNorm lets a deep sigmoid LeNet train fast, at large lrs
=====================  ==================================  ========================================
"""
import importlib

# command name -> module name
STUDIES = {
    "softmax-stability": "stability",
    "vanishing": "vanishing",
    "symmetry": "symmetry",
    "init": "initialization",
    "kfold": "kfold",
    "batchnorm": "batchnorm",
}

__all__ = ["STUDIES", "load"]


def load(name):
    """The module of the study called ``name`` on the command line (e.g. "init")."""
    if name not in STUDIES:
        raise ValueError(f"name must be one of {', '.join(repr(n) for n in STUDIES)}; got {name!r}")
    return importlib.import_module(f"{__name__}.{STUDIES[name]}")
