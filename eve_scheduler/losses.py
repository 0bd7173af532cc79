"""Reading the training loss: at once, or ``lag`` steps later without waiting on the device.

Reading a CUDA loss on the host (``float(loss)``, ``loss.item()``) makes the host
wait for the device. ``DeferredLosses(lag)`` instead starts an asynchronous copy
of each loss into pinned host memory and hands back, at each push, the loss that
was pushed ``lag`` pushes earlier; by then its copy has (almost always) landed,
so reading it does not stall the launch queue. The values are the same floats the
undeferred path reads, only later, so the LR trajectory is the undeferred one
shifted by ``lag`` steps, deterministically.
"""

from __future__ import annotations

import numbers
from collections import deque
from typing import Any

import torch
from torch import Tensor

from eve_scheduler.core._validate import check_integer, check_loss


def check_scalar(loss: Any) -> None:
    """Raise at once for a loss that is not a real scalar, without reading it.

    Raises:
        TypeError: ``loss`` is missing, a bool, a string or another non-number.
        ValueError: ``loss`` is a tensor or array with more than one element.
    """
    if type(loss) is float:  # the common case, kept cheap
        return
    if loss is None:
        raise TypeError(
            "LossFeedbackScheduler.step needs the loss: call scheduler.step(loss). What "
            "steps schedulers with no argument (SequentialLR, ChainedScheduler, Hugging "
            "Face's Trainer) cannot drive it: give the other schedule to it as schedule= "
            "and call step(loss) yourself. In Lightning, use EveCallback, or give the "
            "scheduler dict reduce_on_plateau=True and a monitor"
        )
    if isinstance(loss, Tensor) or _is_array(loss):
        size = loss.numel() if isinstance(loss, Tensor) else loss.size
        if size != 1:
            raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
        real = (
            not (loss.is_complex() or loss.dtype == torch.bool)
            if isinstance(loss, Tensor)
            else loss.dtype.kind in "fiu"  # numpy: float, signed or unsigned int
        )
        if not real:
            raise TypeError(f"loss must be a real number, got dtype {loss.dtype}")
        return
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
        raise TypeError(f"loss must be a real scalar or a one-element tensor, got {loss!r}")


def loss_to_float(loss: Any) -> float:
    """A training loss as a Python float, or a clear error for a non-scalar.

    Accepts Python and numpy real scalars and one-element tensors or arrays of
    any floating dtype, on any device, with or without ``requires_grad``. A CUDA
    tensor is read on the host, which waits for the device; see ``DeferredLosses``.

    Example:
        >>> loss_to_float(torch.tensor(0.25, dtype=torch.bfloat16, requires_grad=True))
        0.25
    """
    if type(loss) is float:
        return loss
    check_scalar(loss)
    if isinstance(loss, Tensor):
        return float(loss.detach().item())
    return check_loss(loss.item() if _is_array(loss) else loss)


class DeferredLosses:
    """A queue that returns each pushed loss ``lag`` pushes later, as a float.

    Args:
        lag: how many pushes a loss waits before it is read; 0 reads at once.

    Example:
        >>> queue = DeferredLosses(lag=2)
        >>> [queue.push(x) for x in [1.0, 2.0, 3.0, 4.0]]
        [None, None, 1.0, 2.0]
        >>> queue.pending()
        [3.0, 4.0]
    """

    def __init__(self, lag: int = 0) -> None:
        self.lag = check_integer("lag", lag)
        self._queue: deque[float | Tensor | _DeviceCopy] = deque()
        self._copies: dict[torch.device, list[_DeviceCopy]] = {}
        self._pushed = 0

    def push(self, loss: Any) -> float | None:
        """Queue ``loss``; return the loss pushed ``lag`` pushes ago, or None."""
        if self.lag == 0:
            return loss_to_float(loss)
        check_scalar(loss)
        self._queue.append(self._hold(loss))
        self._pushed += 1
        if len(self._queue) <= self.lag:
            return None
        return _read(self._queue.popleft())

    def pending(self) -> list[float]:
        """The queued losses, oldest first, as floats (waits for the device)."""
        return [_read(entry) for entry in self._queue]

    def load_pending(self, values: list[float]) -> None:
        """Replace the queue with losses saved by :meth:`pending`."""
        if len(values) > self.lag:
            raise ValueError(f"{len(values)} pending losses do not fit lag={self.lag}")
        self._queue = deque(float(v) for v in values)

    def _hold(self, loss: Any) -> float | Tensor | _DeviceCopy:
        if isinstance(loss, Tensor):
            if loss.device.type == "cuda":
                copies = self._copies.setdefault(
                    loss.device, [_DeviceCopy() for _ in range(self.lag + 1)]
                )
                copy = copies[self._pushed % len(copies)]  # free: read lag pushes ago
                copy.start(loss)
                return copy
            return loss.detach().clone()
        return loss_to_float(loss)


class _DeviceCopy:
    """A pinned host buffer and an event: one asynchronous device-to-host read."""

    def __init__(self) -> None:
        self.buffer = torch.empty((), dtype=torch.float64, pin_memory=True)
        self.event = torch.cuda.Event()  # type: ignore[no-untyped-call]

    def start(self, loss: Tensor) -> None:
        if self.buffer.dtype != loss.dtype:  # same dtype: a plain copy, no cast kernel
            self.buffer = torch.empty((), dtype=loss.dtype, pin_memory=True)
        self.buffer.copy_(loss.detach().reshape(()), non_blocking=True)
        self.event.record()

    def read(self) -> float:
        self.event.synchronize()  # has normally completed already: lag steps have passed
        return float(self.buffer.item())


def _read(entry: float | Tensor | _DeviceCopy) -> float:
    if isinstance(entry, _DeviceCopy):
        return entry.read()
    if isinstance(entry, Tensor):
        return float(entry.item())
    return entry


def _is_array(loss: Any) -> bool:
    """numpy arrays and scalars (without importing numpy)."""
    return all(hasattr(loss, name) for name in ("__array__", "size", "shape", "dtype"))
