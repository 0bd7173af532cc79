"""Config-driven loss feedback, each recipe run for real: ``configure_optimizers``,
the LightningCLI YAML files and the Hydra configs shipped in ``examples/``."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from reference import factors_before_each_loss
from test_lightning_callback import (
    LR,
    data,
    regressor,
    schedule_alone,
    trainer,
    warmup_then_cosine,
)
from torch.optim import SGD

from eve_scheduler import EveCallback, LossFeedbackScheduler, SeedRule

torch.set_num_threads(1)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHORT_RUN = {
    "max_epochs": 1,
    "limit_train_batches": 3,
    "limit_val_batches": 1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}


def load_example(relative: str) -> ModuleType:
    """Import an example script as a module (it is not part of a package)."""
    path = EXAMPLES / relative
    name = "example_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- configure_optimizers --------------------------------------------------------------


@pytest.mark.parametrize("owned_schedule", [False, True], ids=["alone", "owning-warmup-cosine"])
def test_configure_optimizers_with_a_plateau_style_scheduler_dict(owned_schedule: bool) -> None:
    """Lightning calls ``scheduler.step(train_loss)`` after every optimizer step."""
    pl = importlib.import_module("lightning.pytorch")
    base = type(regressor(pl))

    class Recipe(base):
        def configure_optimizers(self) -> Any:
            optimizer = SGD(self.parameters(), lr=LR)
            schedule = warmup_then_cosine(optimizer) if owned_schedule else None
            return {
                "optimizer": optimizer,
                "lr_scheduler": {
                    "scheduler": LossFeedbackScheduler(optimizer, schedule=schedule),
                    "interval": "step",
                    "reduce_on_plateau": True,
                    "monitor": "train_loss",
                },
            }

    model = Recipe()
    trainer(pl, []).fit(model, data())
    unscaled = schedule_alone(warmup_then_cosine if owned_schedule else None, 12)
    factors = factors_before_each_loss(model.losses)
    assert model.lrs == [lr * f for lr, f in zip(unscaled, factors, strict=True)]


# -- LightningCLI ------------------------------------------------------------------------


def run_cli(config: str | Path, tmp_path: Path) -> Any:
    cli = load_example("lightning_cli/train.py")
    args = ["fit", "--config", str(EXAMPLES / "lightning_cli" / config)]
    args += [f"--trainer.{key}={value}" for key, value in SHORT_RUN.items() if key != "logger"]
    args += [f"--trainer.default_root_dir={tmp_path}"]
    return cli.main(args)


def test_cli_callback_route(tmp_path: Path) -> None:
    cli = run_cli("callback.yaml", tmp_path)
    (callback,) = [c for c in cli.trainer.callbacks if isinstance(c, EveCallback)]
    assert callback.scheduler_options == {"beta": 0.95, "min_lr": 0.0001}  # from dict_kwargs
    (scheduler,) = callback.schedulers
    assert scheduler.rule.beta == 0.95
    assert scheduler.state.t == cli.trainer.global_step == 3
    (optimizer,) = cli.trainer.optimizers
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == max(0.01 * scheduler.factor, 0.0001)


def test_cli_scheduler_route(tmp_path: Path) -> None:
    cli = run_cli("scheduler.yaml", tmp_path)
    (config,) = cli.trainer.lr_scheduler_configs
    assert (config.interval, config.reduce_on_plateau, config.monitor) == (
        "step",
        True,
        "train_loss",
    )
    scheduler = config.scheduler
    assert isinstance(scheduler, LossFeedbackScheduler)
    assert scheduler.rule == SeedRule(beta=0.95) and scheduler.min_lrs == [0.0001]
    assert scheduler.state.t == cli.trainer.global_step == 3
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] == max(0.01 * scheduler.factor, 0.0001)


def test_cli_scheduler_route_refuses_hyper_parameters_it_would_drop(tmp_path: Path) -> None:
    config = (EXAMPLES / "lightning_cli" / "scheduler.yaml").read_text()
    rule_object = config[config.index("    rule:") : config.index("    min_lr:")]
    config = config.replace(rule_object, "    rule: seed\n") + "  dict_kwargs:\n    beta: 0.95\n"
    path = tmp_path / "with_beta.yaml"
    path.write_text(config)
    with pytest.raises(ValueError, match=r"ignores lr_scheduler.dict_kwargs \{'beta': 0.95\}"):
        run_cli(path, tmp_path)


# -- Hydra / OmegaConf -------------------------------------------------------------------


def compose(route: str) -> Any:
    from hydra import compose, initialize_config_dir

    config_dir = str(EXAMPLES / "hydra_instantiate" / "conf")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("config", overrides=[f"feedback={route}"])


def test_hydra_instantiates_a_scheduler_bound_to_an_optimizer_later() -> None:
    from hydra.utils import instantiate

    cfg = compose("scheduler")
    make_scheduler = instantiate(cfg.scheduler)  # _partial_: true
    optimizer = SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = make_scheduler(optimizer)
    assert isinstance(scheduler, LossFeedbackScheduler)
    assert scheduler.optimizer is optimizer and scheduler.rule.beta == 0.95
    assert isinstance(instantiate(cfg.optimizer)([torch.zeros(1)]), torch.optim.Adam)


def test_hydra_builds_a_nested_partial_schedule_on_the_same_optimizer() -> None:
    # the docs' snippet: `schedule:` with `_partial_: true` inside the scheduler config
    from hydra import compose as compose_config
    from hydra import initialize_config_dir
    from hydra.utils import instantiate

    config_dir = str(EXAMPLES / "hydra_instantiate" / "conf")
    schedule = [
        "+scheduler.schedule._target_=torch.optim.lr_scheduler.CosineAnnealingLR",
        "+scheduler.schedule._partial_=true",
        "+scheduler.schedule.T_max=30",
    ]
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = compose_config("config", overrides=["feedback=scheduler", *schedule])
    optimizer = SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = instantiate(cfg.scheduler)(optimizer)
    assert isinstance(scheduler.schedule, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert scheduler.schedule.optimizer is optimizer and scheduler.schedule.T_max == 30
    optimizer.step()
    scheduler.step(1.0)
    cosine = LR * (1 + math.cos(math.pi / 30)) / 2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(cosine * scheduler.factor)


@pytest.mark.parametrize("route", ["callback", "scheduler"])
def test_hydra_example_trains(route: str, tmp_path: Path) -> None:
    example = load_example("hydra_instantiate/train.py")
    fit, _ = example.fit(compose(route), **SHORT_RUN, default_root_dir=str(tmp_path))
    if route == "callback":
        (callback,) = [c for c in fit.callbacks if isinstance(c, EveCallback)]
        (scheduler,) = callback.schedulers
    else:
        scheduler = fit.lr_scheduler_configs[0].scheduler
    assert isinstance(scheduler, LossFeedbackScheduler)
    assert scheduler.rule.beta == 0.95 and scheduler.min_lrs == [0.0001]
    assert scheduler.state.t == fit.global_step == 3
