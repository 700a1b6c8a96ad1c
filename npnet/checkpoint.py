"""The checkpoint format: :func:`save_checkpoint`, :func:`load_checkpoint` and the
:class:`Checkpoint` they exchange.

A checkpoint is an ``.npz`` file readable by ``np.load(path, allow_pickle=False)``
(see :func:`save_checkpoint` for the layout), written atomically, verified by a
SHA-256 checksum and by looking at every archive member before NumPy allocates
anything for it. :func:`npnet.train.fit` writes one after every epoch.
"""
import dataclasses
import hashlib
import json
import math
import os
import zipfile

import numpy as np

from . import __version__
from . import _io
from . import _validate as V
from .errors import CheckpointError
from .results import EpochResult

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "Checkpoint", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "npnet-checkpoint"
CHECKPOINT_VERSION = 1
_PREFIXES = ("param/", "buffer/", "optim/", "sched/", "rng/", "rngtype/", "metrics/")
_SCALARS = ("format", "version", "epoch", "checksum", "config", "npnet_version")
_RNG_TYPES = ("PCG64", "PCG64DXSM")   # same state layout: two 128-bit ints and a buffered uint32
_U64 = (1 << 64) - 1


def _encode_rng(name, gen):
    """A PCG64 state as uint64 [state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger]."""
    V.generator(gen, f"rng[{name!r}]")
    st = gen.bit_generator.state
    kind = st["bit_generator"]
    if kind not in _RNG_TYPES:
        raise CheckpointError(f"rng[{name!r}] uses {kind}; checkpoints hold PCG64 generators only "
                              "(np.random.default_rng makes them)")
    s, inc = st["state"]["state"], st["state"]["inc"]
    words = [s >> 64, s & _U64, inc >> 64, inc & _U64, st["has_uint32"], st["uinteger"]]
    return np.array(words, dtype=np.uint64), np.array(kind)


def _decode_rng(words, kind):
    w = [int(x) for x in words]
    return {"bit_generator": kind, "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
            "has_uint32": w[4], "uinteger": w[5]}


def _digest(arrays):
    """SHA-256 over the sorted key names, each array's dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(k for k in arrays if k != "checksum"):
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode("utf-8") + b"\0")
        h.update(a.dtype.str.encode() + b"\0" + repr(a.shape).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(path, *, model, optimizer, epoch, rng, scheduler=None, metrics=(), config=None):
    """Write a training checkpoint to ``path`` (an ``.npz``), atomically.

    The archive holds only plain arrays (``np.load(path, allow_pickle=False)``
    reads it):

    ========================  =====================================================
    ``format``, ``version``   ``"npnet-checkpoint"``, 1
    ``epoch``                 int64, the number of completed epochs
    ``param/<name>``          each of ``model.params`` ("param/1.weight", ...)
    ``buffer/<name>``         each of ``model.buffers`` ("buffer/2.running_mean", ...), if any
    ``optim/<key>``           ``optimizer.state_dict()``
    ``sched/<key>``           ``scheduler.state_dict()``, when there is a scheduler
    ``rng/<name>``            uint64 (6,): PCG64 state and increment as (high, low)
                              64-bit halves, ``has_uint32``, ``uinteger``
    ``rngtype/<name>``        "PCG64" or "PCG64DXSM"
    ``metrics/<column>``      float64 per epoch: epoch, train_loss, train_acc, test_acc, seconds, test_loss
    ``config``                JSON text of ``config``
    ``npnet_version``         the writer's npnet version (informational)
    ``checksum``              SHA-256 hex over sorted key names + dtype + shape + bytes of every other array
    ========================  =====================================================

    The file is written to a temp file in the same directory, flushed, fsynced
    and renamed over ``path``: a crash at any moment leaves either the old
    checkpoint or the new one, never a mix.

    Args:
        path: str or os.PathLike; its directory must exist.
        model: the module whose ``params`` to save.
        optimizer: an npnet optimizer (its ``state_dict()``).
        epoch: int >= 0, completed epochs.
        rng: a numpy Generator (saved as "rng") or a dict name -> Generator:
            every generator the run draws from (shuffling, dropout).
        scheduler: optional scheduler with ``state_dict()``.
        metrics: sequence of :class:`EpochResult` (or dicts with its fields).
        config: JSON-serialisable dict, or None.

    Raises:
        CheckpointError: something cannot be stored without pickle, a parameter or
            an optimizer state array holds NaN or inf (:func:`load_checkpoint`
            would refuse it), or the write failed.
    """
    path = V.path(path, "path")
    V.model(model)
    V.optimizer(optimizer, needs=("state_dict",))
    epoch = V.integer(epoch, "epoch", low=0)
    rngs = V.generators(rng, "rng")
    V.scheduler(scheduler, needs=("state_dict",))
    metrics = V.history(metrics, "metrics")
    arrays = {
        "format": np.array(CHECKPOINT_FORMAT),
        "version": np.array(CHECKPOINT_VERSION, dtype=np.int64),
        "epoch": np.array(epoch, dtype=np.int64),
        "npnet_version": np.array(__version__),
    }
    for prefix, d in (("param/", model.params), ("buffer/", model.buffers), ("optim/", optimizer.state_dict()),
                      ("sched/", scheduler.state_dict() if scheduler is not None else {})):
        for k, v in d.items():
            arrays[prefix + k] = np.array(v)   # a copy: the saved bytes are the ones hashed
    bad = first_non_finite({k: a for k, a in arrays.items() if k.startswith(("param/", "optim/"))})
    if bad is not None:
        raise CheckpointError(f"cannot save {bad!r}: it holds NaN or inf, and a checkpoint of a diverged model "
                              "could not be loaded back")
    for name, gen in rngs.items():
        arrays["rng/" + name], arrays["rngtype/" + name] = _encode_rng(name, gen)
    rows = [r.as_dict() for r in metrics]
    for col in (f.name for f in dataclasses.fields(EpochResult)):
        arrays["metrics/" + col] = np.array([float(r.get(col, math.nan)) for r in rows], dtype=np.float64)
    arrays["config"] = np.array(V.json_text(config, "config"))
    for k, a in arrays.items():
        if a.dtype.kind not in "biufU":
            raise CheckpointError(f"cannot store {k!r} (dtype {a.dtype}) in a checkpoint without pickle")
    arrays["checksum"] = np.array(_digest(arrays))
    try:
        _io.atomic_write(path, lambda f, _: np.savez(f, allow_pickle=False, **arrays))
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path}: {e.strerror or e}") from None


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint read back and verified by :func:`load_checkpoint`."""

    path: str
    version: int
    epoch: int
    params: dict       # name -> ndarray
    optimizer: dict    # the optimizer's state_dict
    scheduler: dict    # the scheduler's state_dict, or None
    rng: dict          # name -> bit_generator.state dict
    metrics: list      # EpochResult per completed epoch
    config: dict       # or None
    buffers: dict = dataclasses.field(default_factory=dict)   # name -> ndarray (running statistics)

    def restore(self, *, model, optimizer=None, scheduler=None, rng=None):
        """Put the saved state into live objects: parameters and buffers, optimizer, scheduler, generators.

        The model's parameter names, shapes and dtypes, the optimizer's and the
        scheduler's state and the generators' names are all checked before the
        model is touched.

        Args:
            model: the module to load the parameters into (in place).
            optimizer, scheduler: optional; loaded from the saved state dicts.
            rng: a Generator or dict name -> Generator (the names that were saved).

        Raises:
            CheckpointError: anything does not fit; the message names it.
        """
        where = f"checkpoint {self.path}"
        params = V.model(model).params
        V.optimizer(optimizer, optional=True, needs=("state_dict", "load_state_dict"))
        V.scheduler(scheduler, needs=("load_state_dict",))
        V.generators(rng, "rng", optional=True)
        missing, extra = sorted(set(params) - set(self.params)), sorted(set(self.params) - set(params))
        if missing or extra:
            raise CheckpointError(f"{where} does not fit this model: missing parameters {missing}, "
                                  f"unexpected {extra}")
        buffers = model.buffers
        missing, extra = sorted(set(buffers) - set(self.buffers)), sorted(set(self.buffers) - set(buffers))
        if missing or extra:
            raise CheckpointError(f"{where} does not fit this model: missing buffers {missing}, unexpected {extra}")
        for k, p in [*params.items(), *buffers.items()]:
            v = self.params[k] if k in params else self.buffers[k]
            if v.shape != p.shape:
                raise CheckpointError(f"{where} does not fit this model: {k!r} has shape {v.shape} in the "
                                      f"checkpoint but {p.shape} in the model")
            if v.dtype != p.dtype:
                raise CheckpointError(f"{where} does not fit this model: {k!r} is {v.dtype} in the "
                                      f"checkpoint but {p.dtype} in the model")
        rngs = {} if rng is None else ({"rng": rng} if isinstance(rng, np.random.Generator) else dict(rng))
        if rng is not None and set(rngs) != set(self.rng):
            raise CheckpointError(f"{where} holds the generators {sorted(self.rng)}, "
                                  f"but this run draws from {sorted(rngs)}")
        for name, gen in rngs.items():
            kind = gen.bit_generator.state["bit_generator"]
            if kind != self.rng[name]["bit_generator"]:
                raise CheckpointError(f"{where}: generator {name!r} is {self.rng[name]['bit_generator']}, "
                                      f"the run's is {kind}")
        if scheduler is not None and self.scheduler is None:
            raise CheckpointError(f"{where} holds no scheduler state, but the run has a scheduler")
        if scheduler is None and self.scheduler is not None and optimizer is not None:
            raise CheckpointError(f"{where} holds scheduler state, but the run has no scheduler; "
                                  "resuming without it would change the learning rates")
        # Each load_state_dict checks everything before it changes anything; if the
        # scheduler's fails after the optimizer's succeeded, put the optimizer back.
        before = optimizer.state_dict() if optimizer is not None else None
        for what, obj, state in (("optimizer", optimizer, self.optimizer), ("scheduler", scheduler, self.scheduler)):
            if obj is None:
                continue
            try:
                obj.load_state_dict(state)
            except (ValueError, TypeError) as e:
                if what == "scheduler" and before is not None:
                    optimizer.load_state_dict(before)
                raise CheckpointError(f"{where}: the saved {what} state does not fit: {e}") from None
        model.load_state_dict({**self.params, **self.buffers})
        for name, gen in rngs.items():
            gen.bit_generator.state = self.rng[name]


def _refuse(path, why):
    return CheckpointError(f"checkpoint {path}: {why}")


_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_METHODS = {zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def _check_archive(path, f, size):
    """Look at every member of an .npz before np.load does, and refuse what it would
    misread or allocate too much for.

    np.load allocates an array of the shape a member's .npy header claims before
    it reads the data, so a 200-byte file could ask for terabytes. Here each
    member must be an .npy array, stored (npnet never compresses a checkpoint:
    inflating a deflated member costs memory and time before the checksum can
    refuse it, about 1000 times its size), whose claimed size fits in the bytes
    the member really holds, with no Python objects (pickle). Only the zip
    directory and the .npy headers are read.
    """
    try:
        with zipfile.ZipFile(f) as zf:
            stored = 0
            for info in zf.infolist():
                name = info.filename
                if not name.endswith(".npy"):
                    raise _refuse(path, f"unexpected member {name!r}; an npnet checkpoint holds only .npy arrays")
                if info.compress_type != zipfile.ZIP_STORED:
                    method = _ZIP_METHODS.get(info.compress_type, f"method {info.compress_type}")
                    raise _refuse(path, f"member {name!r} is compressed ({method}); npnet writes checkpoints "
                                        "uncompressed (np.savez, not np.savez_compressed), so a compressed "
                                        "member is refused before it is inflated")
                stored += info.compress_size
                if info.file_size > info.compress_size or stored > size:
                    raise _refuse(path, f"member {name!r} claims {info.file_size} bytes, more than the file "
                                        f"holds for it; the file is corrupt")
                with zf.open(info) as m:
                    version = np.lib.format.read_magic(m)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(m)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(m)
                    else:
                        raise _refuse(path, f"member {name!r} is an .npy of version {version}, which npnet "
                                            "does not write")
                    key = name[:-4]
                    if dtype.hasobject:
                        raise _refuse(path, f"array {key!r} holds pickled Python objects; npnet checkpoints "
                                            "never do, and loading a pickle can run arbitrary code, so it is "
                                            "refused")
                    claimed = math.prod(shape) * dtype.itemsize
                    if claimed > info.file_size - m.tell():
                        raise _refuse(path, f"array {key!r} claims shape {shape} of {dtype} ({claimed} bytes) "
                                            f"but its member holds {max(info.file_size - m.tell(), 0)}; "
                                            "the file is corrupt")
    except CheckpointError:
        raise
    except Exception as e:   # noqa: BLE001 - zipfile and the .npy header parser fail in many ways
        raise _refuse(path, f"corrupt .npz archive ({type(e).__name__}: {e})") from None


def load_checkpoint(path):
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Refused with a :class:`~npnet.errors.CheckpointError` that says why: a
    missing or unreadable file, not an npz archive, a compressed member (npnet
    never writes one; refused before it is inflated), a pickle-bearing array
    (npnet never writes one, and loading one could run arbitrary code), another
    format, another format version, a checksum that does not match (a flipped
    byte), malformed entries, or parameters or optimizer state holding NaN or
    inf (npnet never saves them). Whether the shapes fit a model is checked by
    :meth:`Checkpoint.restore`.

    Args:
        path: str or os.PathLike.

    Returns:
        :class:`Checkpoint`.
    """
    path = V.path(path, "path")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if head.startswith(_ZIP_MAGICS):
                f.seek(0)
                _check_archive(path, f, size)
    except FileNotFoundError:
        raise _refuse(path, "no such file") from None
    except OSError as e:
        raise _refuse(path, f"cannot read it: {e.strerror or e}") from None
    if not head.startswith(_ZIP_MAGICS):
        if not head:
            why = "the file is empty"
        elif head.startswith(b"\x93NUMPY"):
            why = "not an npnet checkpoint: a single .npy array, not an .npz archive"
        elif head[:1] == b"\x80":
            why = ("it holds pickled data; npnet checkpoints never do, and loading a pickle can run arbitrary "
                   "code, so it is refused")
        else:
            why = f"not an npnet checkpoint: an .npz (zip) archive starts with PK, this file with {head[:4]!r}"
        raise _refuse(path, why)
    try:
        z = np.load(path, allow_pickle=False)
    except OSError as e:
        raise _refuse(path, f"cannot read it: {e.strerror or e}") from None
    except Exception as e:   # noqa: BLE001 - a damaged file can fail in many ways inside np.load
        raise _refuse(path, f"corrupt or not an .npz file ({type(e).__name__}: {e})") from None
    arrays = {}
    with z:
        for key in z.files:
            try:
                arrays[key] = z[key]
            except Exception as e:   # noqa: BLE001 - bad CRC, truncated member, broken header...
                raise _refuse(path, f"array {key!r} is corrupt ({type(e).__name__}: {e})") from None
            if not isinstance(arrays[key], np.ndarray):   # np.load returns the raw bytes of a non-.npy member
                raise _refuse(path, f"the entry {key!r} is not an .npy array")

    def scalar(key, kind):
        a = arrays.get(key)
        if a is None:
            raise _refuse(path, f"the entry {key!r} is missing; not an npnet checkpoint or a damaged one")
        if a.shape != () or a.dtype.kind not in kind:
            raise _refuse(path, f"the entry {key!r} is malformed ({a.dtype}, shape {a.shape})")
        return a.item()

    fmt = scalar("format", "U")
    if fmt != CHECKPOINT_FORMAT:
        raise _refuse(path, f"format {fmt!r} is not {CHECKPOINT_FORMAT!r}")
    version = scalar("version", "iu")
    if version != CHECKPOINT_VERSION:
        newer = " (written by a newer npnet?)" if version > CHECKPOINT_VERSION else ""
        raise _refuse(path, f"format version {version} is not supported{newer}; "
                            f"this npnet reads version {CHECKPOINT_VERSION}")
    checksum = scalar("checksum", "U")
    if checksum != _digest(arrays):
        raise _refuse(path, "checksum mismatch: the file is corrupt or was modified after it was written")

    params, buffers, optim, sched, rng_words, rng_kinds, metrics = {}, {}, {}, {}, {}, {}, {}
    by_prefix = {"param/": params, "buffer/": buffers, "optim/": optim, "sched/": sched, "rng/": rng_words,
                 "rngtype/": rng_kinds, "metrics/": metrics}
    for key, a in arrays.items():
        if key in _SCALARS:
            continue
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise _refuse(path, f"unexpected entry {key!r}")
        by_prefix[prefix][key[len(prefix):]] = a
    for name, p in params.items():
        if p.dtype not in V.FLOAT_DTYPES:
            raise _refuse(path, f"parameter {name!r} has dtype {p.dtype}, expected float32 or float64")
    for name, b in buffers.items():
        if b.dtype not in V.FLOAT_DTYPES and b.dtype != np.int64:
            raise _refuse(path, f"buffer {name!r} has dtype {b.dtype}, expected float32, float64 or int64")
    for what, entries in (("parameter", params), ("optimizer state", optim)):
        bad = first_non_finite(entries)
        if bad is not None:
            raise _refuse(path, f"{what} {bad!r} holds NaN or inf; the checkpoint is bad (npnet never saves a "
                                "diverged model) and cannot be resumed")
    rngs = {}
    if set(rng_words) != set(rng_kinds):
        raise _refuse(path, f"generator entries do not pair up: {sorted(rng_words)} vs {sorted(rng_kinds)}")
    for name, words in rng_words.items():
        kind = rng_kinds[name]
        if words.dtype != np.uint64 or words.shape != (6,) or kind.shape != () or kind.item() not in _RNG_TYPES:
            raise _refuse(path, f"generator {name!r} is malformed")
        rngs[name] = _decode_rng(words, kind.item())
        try:   # a state numpy would refuse, refused now rather than halfway through restore()
            getattr(np.random, kind.item())().state = rngs[name]
        except (ValueError, TypeError, OverflowError) as e:
            raise _refuse(path, f"generator {name!r} holds an invalid state ({e})") from None
    columns = [f.name for f in dataclasses.fields(EpochResult)]
    if sorted(metrics) != sorted(columns) or len({m.shape for m in metrics.values()}) != 1 \
            or any(m.ndim != 1 or m.dtype != np.float64 for m in metrics.values()):
        raise _refuse(path, f"metrics must be float64 vectors of equal length named {columns}")
    epochs_column = metrics["epoch"]
    if not np.all(np.isfinite(epochs_column)) or np.any(epochs_column != np.round(epochs_column)) \
            or np.any(np.abs(epochs_column) > 2**53):
        raise _refuse(path, "metrics/epoch must hold whole epoch numbers")
    rows = [EpochResult(**{c: (int(metrics[c][i]) if c == "epoch" else float(metrics[c][i])) for c in columns})
            for i in range(metrics["epoch"].shape[0])]
    try:
        config = json.loads(scalar("config", "U"))
    except ValueError as e:
        raise _refuse(path, f"config is not valid JSON ({e})") from None
    if config is not None and not isinstance(config, dict):
        raise _refuse(path, f"config must be a JSON object or null, got {type(config).__name__}")
    epoch = scalar("epoch", "iu")
    if epoch < 0 or len(rows) != epoch:
        raise _refuse(path, f"epoch {epoch} does not match the {len(rows)} rows of metrics")
    return Checkpoint(path, version, int(epoch), params, optim, sched or None, rngs, rows, config, buffers)



def first_non_finite(arrays):
    """The first key of ``arrays`` whose float array holds NaN or inf, or None."""
    for key, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
            return key
    return None

