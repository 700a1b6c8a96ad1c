"""npnet and torch trained side by side on the same batches (``npnet train --check-torch``)."""
import numpy as np
import torch

from npnet import nn, optim

from .twins import twin


class TorchTwin:
    """A PyTorch copy of an npnet model and optimizer, trained in lockstep.

    Built from the npnet model's current parameters (same initial weights) and
    its optimizer's hyperparameters (``torch.optim.SGD``/``Adam``/``AdamW``),
    it replays every batch through torch's autograd with
    ``torch.nn.CrossEntropyLoss``. Each layer's twin is the one its
    ``reference.registry`` entry declares. Dropout layers draw the very masks
    npnet draws: the twin holds a copy of each Dropout generator, taken when it
    is built, and draws with :func:`npnet.nn.functional.dropout_mask`. The twin
    runs in torch's training mode, as ``train_epoch`` runs npnet's forward with
    ``train=True``, so BatchNorm twins normalize with the batch's statistics and
    update the running ones; :meth:`param_diff` compares those buffers too. The
    learning rate is copied from the npnet optimizer before each step, so a
    scheduler is followed.

    Use it as a callback::

        twin = TorchTwin(model, optimizer)          # before training; imports torch
        fit(..., callbacks=[twin])
        twin.epoch_diffs    # [(epoch, max |loss diff| over its steps, max |param diff| at its end)]

    Raises:
        ValueError: a layer or optimizer it cannot mirror, or an optimizer that
            already has state.
    """

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        if any(optimizer.state.values()):
            raise ValueError("TorchTwin needs an optimizer without state (build the twin before training)")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an npnet Module, got {type(model).__name__}")
        if model.dtype is None:
            raise ValueError(f"model has no parameters to train: {model!r}")
        # the twins declared in reference.registry; Dropout draws from copies of npnet's generators
        try:
            self.net = twin(model, replay="rng")
        except TypeError as e:
            raise ValueError(f"TorchTwin cannot mirror {model!r}: {e}") from None
        self.net.train()

        group = dict(optimizer.param_groups[0])
        group.pop("initial_lr", None)
        tparams = list(self.net.parameters())
        if type(optimizer) is optim.SGD:
            self.topt = torch.optim.SGD(tparams, foreach=False, **group)
        elif type(optimizer) is optim.AdamW:
            group.pop("decoupled_weight_decay", None)
            self.topt = torch.optim.AdamW(tparams, foreach=False, **group)
        elif type(optimizer) is optim.Adam:
            self.topt = torch.optim.Adam(tparams, foreach=False, **group)
        else:
            raise ValueError(f"TorchTwin cannot mirror {type(optimizer).__name__}")
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.epoch_diffs = []
        self._max_loss_diff = 0.0

    def on_epoch_start(self, epoch):
        self._max_loss_diff = 0.0

    def on_step(self, info):
        """Train the twin on the same batch and record the loss difference."""
        self.topt.param_groups[0]["lr"] = self.optimizer.lr
        X, y = torch.from_numpy(info.X), torch.from_numpy(info.y)
        self.topt.zero_grad()
        loss = self.loss_fn(self.net(X), y)
        loss.backward()
        self.topt.step()
        self._max_loss_diff = max(self._max_loss_diff, abs(loss.item() - info.loss))

    def param_diff(self):
        """Largest absolute difference between any npnet parameter or buffer (BatchNorm's
        running statistics, which both sides update in training mode) and its twin's."""
        state = self.net.state_dict()
        return max(float(np.max(np.abs(p - state[k].detach().numpy().astype(p.dtype)), initial=0.0))
                   for k, p in {**self.model.params, **self.model.buffers}.items())

    def on_epoch_end(self, result):
        self.epoch_diffs.append((result.epoch, self._max_loss_diff, self.param_diff()))
