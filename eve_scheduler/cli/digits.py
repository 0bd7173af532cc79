"""The demo's task: scikit-learn's bundled digits, a small MLP trained with Lightning.

Imported only by ``eve-scheduler demo`` (it needs the ``demo`` extra: Lightning,
scikit-learn). One call of :func:`train` is one seeded training run; two runs
with the same seed start from the same weights and see the same batches.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm  # type: ignore[import-untyped]

HIDDEN = 64
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Digits:
    """The 8x8 digit images (pixels scaled to [0, 1]) split into train and test."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_split(seed: int) -> Digits:
    """Scikit-learn's 1,797 digits, a stratified 80/20 split drawn with ``seed``."""
    images, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        images / 16.0, labels, test_size=TEST_FRACTION, random_state=seed, stratify=labels
    )
    return Digits(
        torch.tensor(x_train, dtype=torch.float32),
        torch.tensor(y_train, dtype=torch.long),
        torch.tensor(x_test, dtype=torch.float32),
        torch.tensor(y_test, dtype=torch.long),
    )


class DigitsClassifier(pl.LightningModule):
    """A 64-64-10 MLP with Adam at a constant base LR (any schedule comes from callbacks)."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(x)
        return logits

    def training_step(self, batch: Sequence[Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class History(pl.Callback):
    """Records, per optimizer step, the LR the step used and the loss it computed."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.losses: list[float] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.lrs.append(float(trainer.optimizers[0].param_groups[0]["lr"]))

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.losses.append(float(outputs["loss"]))


class ProgressBar(pl.Callback):
    """One tqdm bar over all the steps of a run, with the latest loss."""

    def __init__(self, label: str, steps: int) -> None:
        self.label = label
        self.steps = steps
        self.bar: Any = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar = tqdm(total=self.steps, desc=self.label, unit="step", leave=True, disable=None)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self.bar.update(1)
        if trainer.global_step % 20 == 0:
            self.bar.set_postfix(loss=f"{float(outputs['loss']):.4f}")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.bar.close()


@dataclass(frozen=True)
class RunResult:
    """What one training run produced."""

    label: str
    lrs: list[float]
    losses: list[float]
    train_loss: float  # cross-entropy on the whole training set after training
    test_accuracy: float
    train_seconds: float


def train(
    label: str,
    data: Digits,
    *,
    lr: float,
    steps: int,
    batch_size: int,
    seed: int,
    callbacks: Sequence[pl.Callback] = (),
) -> RunResult:
    """Train a fresh, seeded :class:`DigitsClassifier` for ``steps`` optimizer steps."""
    pl.seed_everything(seed, verbose=False)
    model = DigitsClassifier(lr)
    batches = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    history = History()
    with _quiet_lightning():
        trainer = pl.Trainer(
            max_steps=steps,
            max_epochs=-1,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
            callbacks=[history, ProgressBar(label, steps), *callbacks],
        )
        start = time.perf_counter()
        trainer.fit(model, batches)
        seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        train_loss = functional.cross_entropy(model(data.x_train), data.y_train).item()
        predicted = model(data.x_test).argmax(dim=1)
        accuracy = (predicted == data.y_test).float().mean().item()
    return RunResult(label, history.lrs, history.losses, train_loss, accuracy, seconds)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Hide Lightning's start-up notices, its hint about data-loader workers and the
    deprecation warnings of the installed packages, none of which a demo user can act on."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)
