"""A tiny regression task for the examples: scikit-learn's bundled diabetes data.

Ten standardized features, a standardized target, a one-hidden-layer MLP. The
model has no ``configure_optimizers``: the optimizer (and, in one recipe, the
scheduler) comes from the configuration.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from sklearn.datasets import load_diabetes
from torch import Tensor, nn
from torch.nn import functional
from torch.utils.data import DataLoader, TensorDataset


class DiabetesData(pl.LightningDataModule):
    """442 patients, 10 features; the first 352 for training, the rest for validation."""

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        x, y = load_diabetes(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32)
        y = torch.tensor((y - y.mean()) / y.std(), dtype=torch.float32).unsqueeze(1)
        x = (x - x.mean(0)) / x.std(0)
        self.train_set = TensorDataset(x[:352], y[:352])
        self.val_set = TensorDataset(x[352:], y[352:])

    def train_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return DataLoader(self.train_set, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return DataLoader(self.val_set, batch_size=len(self.val_set))


class DiabetesRegressor(pl.LightningModule):
    """A 10-``hidden``-1 MLP; logs ``train_loss`` every step and ``val_loss`` every epoch."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        loss = functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", functional.mse_loss(self.net(x), y))
