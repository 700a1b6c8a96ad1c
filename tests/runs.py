"""Small training runs shared by tests/test_train.py and tests/test_checkpoint.py."""
import numpy as np

from npnet import nn, optim
from npnet import train as T
from npnet.data import DataLoader


def synthetic(n, seed=0):
    """n uint8 (28, 28) images and int64 labels; class c lights rows 2c..2c+3."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int64)
    X = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for c in range(10):
        X[y == c, 2 * c + 4:2 * c + 8, 4:24] = 220
    return X, y


def setup_run(*, model="mlp", dropout=0.2, optimizer="sgd", scheduler=False, seed=0, n=300, batch_size=32,
              dtype=np.float32, lr=0.1):
    """Everything fit needs, built from one seed (as the CLI builds it)."""
    init_ss, shuffle_ss, dropout_ss = np.random.SeedSequence(seed).spawn(3)
    m = T.build_model(model, hidden=32, dropout=dropout if model == "mlp" else 0.0,
                      rng=np.random.default_rng(init_ss), dropout_rng=np.random.default_rng(dropout_ss), dtype=dtype)
    if optimizer == "sgd":
        opt = optim.SGD(m.params, lr=lr, momentum=0.9, weight_decay=1e-4)
    else:
        opt = optim.Adam(m.params, lr=lr / 100)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5) if scheduler else None
    X, y = synthetic(n)
    Xt, yt = synthetic(100, seed=1)
    train_loader = DataLoader(X, y, batch_size, shuffle=True, rng=np.random.default_rng(shuffle_ss))
    test_loader = DataLoader(Xt, yt, 50)
    return dict(model=m, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, train_loader=train_loader,
                test_loader=test_loader, scheduler=sched)


def run_fit(run, epochs, **kw):
    return T.fit(run["model"], run["loss_fn"], run["optimizer"], run["train_loader"], run["test_loader"], epochs,
                 scheduler=run["scheduler"], **kw)


def same_numbers(a, b):
    return {k: (v.dtype, v.shape, v.tobytes()) for k, v in a.items()} == \
           {k: (v.dtype, v.shape, v.tobytes()) for k, v in b.items()}


def tiny_run(seed=0):
    """A small run with everything a checkpoint holds: dropout and shuffle generators, Adam state, a scheduler."""
    init_ss, shuffle_ss, dropout_ss = np.random.SeedSequence(seed).spawn(3)
    model = T.build_model("mlp", hidden=3, dropout=0.5, in_features=4, num_classes=3,
                          rng=np.random.default_rng(init_ss), dropout_rng=np.random.default_rng(dropout_ss))
    opt = optim.Adam(model.params, lr=0.01)
    sched = optim.StepLR(opt, 1, gamma=0.5)
    X = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    y = np.random.default_rng(0).integers(0, 3, 8).astype(np.int64)
    loader = DataLoader(X, y, 4, shuffle=True, rng=np.random.default_rng(shuffle_ss))
    return model, opt, sched, loader
