"""Hydra with loss feedback: the callback or the scheduler built from a ``_target_`` config.

    python examples/hydra_instantiate/train.py                      # EveCallback
    python examples/hydra_instantiate/train.py feedback=scheduler   # LossFeedbackScheduler

The optimizer and the scheduler are configured with ``_partial_: true``: Hydra
builds a ``functools.partial``, and ``configure_optimizers`` binds it to the
model's parameters (the optimizer) and to the optimizer (the scheduler).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from omegaconf import DictConfig
from torch.optim import Optimizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for `diabetes`

from diabetes import DiabetesData, DiabetesRegressor


class ConfiguredRegressor(DiabetesRegressor):
    """The diabetes MLP with its optimizer (and maybe scheduler) from the config."""

    def __init__(
        self,
        optimizer: Callable[..., Optimizer],
        scheduler: Callable[[Optimizer], Any] | None = None,
        hidden: int = 16,
    ) -> None:
        super().__init__(hidden)
        self.make_optimizer = optimizer
        self.make_scheduler = scheduler

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.parameters())
        if self.make_scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.make_scheduler(optimizer),
                "interval": "step",
                "reduce_on_plateau": True,  # Lightning then calls scheduler.step(train_loss)
                "monitor": "train_loss",
            },
        }


def fit(cfg: DictConfig, **trainer_overrides: Any) -> tuple[pl.Trainer, ConfiguredRegressor]:
    """Instantiate everything from ``cfg`` and train; returns the trainer and the model."""
    pl.seed_everything(cfg.seed)
    callbacks = [] if cfg.callback is None else [hydra.utils.instantiate(cfg.callback)]
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, **trainer_overrides)
    model = ConfiguredRegressor(
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=None if cfg.scheduler is None else hydra.utils.instantiate(cfg.scheduler),
        hidden=cfg.model.hidden,
    )
    trainer.fit(model, DiabetesData(cfg.batch_size))
    return trainer, model


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    fit(cfg)


if __name__ == "__main__":
    main()
