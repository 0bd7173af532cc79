"""LightningCLI with loss feedback, configured from YAML.

Two recipes, each a YAML file next to this script:

    python examples/lightning_cli/train.py fit --config examples/lightning_cli/callback.yaml
    python examples/lightning_cli/train.py fit --config examples/lightning_cli/scheduler.yaml

``callback.yaml`` adds ``eve_scheduler.EveCallback`` to ``trainer.callbacks``: nothing
else changes. ``scheduler.yaml`` sets ``lr_scheduler`` to
``eve_scheduler.LossFeedbackScheduler``; LightningCLI would step it with no loss (it
hands a monitored metric only to its own ``ReduceLROnPlateau``, once per epoch), so
``FeedbackCLI`` below overrides ``configure_optimizers`` to have Lightning step it
after every optimizer step with the logged ``train_loss``.

The rule's hyper-parameters (``beta``, ...) are ``**hparams`` of both classes, which
jsonargparse takes as ``dict_kwargs``. That works for the callback, but LightningCLI
builds ``lr_scheduler`` from ``init_args`` alone, so on that route they are set on a
rule object instead (``rule: {class_path: eve_scheduler.SeedRule, init_args: ...}``);
``FeedbackCLI`` refuses ``dict_kwargs`` there rather than drop them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningCLI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/, for `diabetes`

from diabetes import DiabetesData, DiabetesRegressor

from eve_scheduler import LossFeedbackScheduler


class FeedbackCLI(LightningCLI):
    """A LightningCLI that feeds a ``LossFeedbackScheduler`` the training loss every step."""

    monitor = "train_loss"  # the metric the module logs with self.log in training_step

    def before_instantiate_classes(self) -> None:
        # LightningCLI builds lr_scheduler from init_args alone: it would silently drop
        # dict_kwargs, which is where jsonargparse puts the rule's hyper-parameters.
        config = self.config.get(str(self.subcommand), self.config)
        scheduler = config.get("lr_scheduler")
        if scheduler is not None and scheduler.get("dict_kwargs"):
            raise ValueError(
                f"LightningCLI ignores lr_scheduler.dict_kwargs {dict(scheduler.dict_kwargs)}: "
                "set the rule's hyper-parameters on a rule object instead (rule: "
                "{class_path: eve_scheduler.SeedRule, init_args: {beta: 0.95}})"
            )

    @staticmethod
    def configure_optimizers(
        lightning_module: Any, optimizer: Any, lr_scheduler: Any = None
    ) -> Any:
        if isinstance(lr_scheduler, LossFeedbackScheduler):
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": lr_scheduler,
                    "interval": "step",
                    "reduce_on_plateau": True,  # Lightning then calls step(metric)
                    "monitor": FeedbackCLI.monitor,
                },
            }
        return LightningCLI.configure_optimizers(lightning_module, optimizer, lr_scheduler)


def main(args: Any = None) -> FeedbackCLI:
    """Run the CLI; ``args`` as for ``LightningCLI`` (None: the command line)."""
    return FeedbackCLI(DiabetesRegressor, DiabetesData, args=args)


if __name__ == "__main__":
    main()
