"""One npnet training epoch on request, in a process of its own.

``python -m benchmarks._epoch_worker KIND IMAGES THREADS`` builds the model, loader,
loss and optimizer exactly as :func:`benchmarks.e2e.run` builds npnet's side (KIND:
softmax, mlp, lenet or cnn; IMAGES: the first that many training images), prints
one line ``ready <kernels>`` and then, for each line ``epoch`` read from stdin, runs
:func:`npnet.train.train_epoch` once and answers ``done <seconds>``. It exists
because ``NPNET_KERNELS`` is read when npnet is imported: the plain kernels can be
timed only in a process started with ``NPNET_KERNELS=plain``, and this one can be
interleaved with the parent's timings, epoch by epoch.
"""
import os
import sys
import time


def kernels_in_use():
    """"plain" or "fast" as npnet chose them at import, or "one set" when npnet has no switch."""
    import npnet.nn.functional as F
    if not hasattr(F.cross_entropy, "plain"):
        return "one set"
    return os.environ.get("NPNET_KERNELS") or "fast"


def main(argv):
    kind, images, threads = argv[0], int(argv[1]), int(argv[2])
    import numpy as np
    from threadpoolctl import threadpool_limits

    from npnet import data, nn, optim
    from npnet import train as T

    from .e2e import BATCH, _npnet_model

    X, y, _, _ = data.load_fashion_mnist()
    X, y = X[:images], y[:images]
    rng = np.random.default_rng(1)
    model, lr = _npnet_model(kind, rng)
    opt = optim.SGD(model.params, lr=lr)
    loader = data.DataLoader(X, y, BATCH, shuffle=True, rng=rng)
    loss_fn = nn.CrossEntropyLoss()
    with threadpool_limits(limits=threads, user_api="blas"):
        print("ready", kernels_in_use(), flush=True)
        for line in sys.stdin:
            if line.strip() != "epoch":
                break
            start = time.perf_counter()
            T.train_epoch(model, loss_fn, opt, loader)
            print("done", time.perf_counter() - start, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
