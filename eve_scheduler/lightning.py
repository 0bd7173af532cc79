"""``EveCallback``: loss feedback for any LightningModule, with no change to the module.

The callback is glue between Lightning's training events and
:class:`~eve_scheduler.LossFeedbackScheduler`; it holds no math of its own. At the
start of training it attaches one feedback scheduler to each optimizer, and it
feeds it the training loss once per optimizer step (or once per epoch).

A schedule returned by ``configure_optimizers`` keeps working: the param groups
hold the *unscaled* LR from the end of each optimizer step until the end of the
batch, which is when Lightning steps its schedulers, and the scaled LR
(``unscaled_lr * factor``) at every other moment: while the optimizer steps, when
``LearningRateMonitor`` reads it, and when a checkpoint is written. While it
trains, the callback also wraps two hooks of the module (``lr_scheduler_step``, so
that a schedule stepped after a batch without an optimizer step sees the unscaled
LR too, and ``on_train_epoch_end``, after which a monitored metric is fed).

Lightning is an optional extra: ``pip install "eve-scheduler[lightning]"``. The
callback subclasses ``lightning.pytorch.Callback`` when the ``lightning`` package
is installed, else ``pytorch_lightning.Callback``; either class works in either
namespace's ``Trainer`` when given in the ``callbacks`` list.
"""

from __future__ import annotations

import copy
import functools
import importlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import torch
from packaging.version import Version
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.hooks import RemovableHandle

from eve_scheduler.core import RuleSpec
from eve_scheduler.core._validate import check_flag, check_integer
from eve_scheduler.losses import check_scalar, loss_to_float
from eve_scheduler.scheduler import LossFeedbackScheduler, min_lr_per_group

_INSTALL_HINT = 'pip install "eve-scheduler[lightning]"'
OLDEST_LIGHTNING = "2.5"  # tested from 2.5; with 2.4 a resumed run takes other LRs


def _lightning_namespace() -> Any:
    """``lightning.pytorch`` if it is installed, else ``pytorch_lightning``."""
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            namespace = importlib.import_module(name)
        except ImportError:
            continue
        if Version(namespace.__version__) < Version(OLDEST_LIGHTNING):
            package = name.split(".")[0].replace("_", "-")
            raise ImportError(
                f"EveCallback needs Lightning >= {OLDEST_LIGHTNING}, this is {package} "
                f'{namespace.__version__}. Upgrade it with: pip install -U "{package}>='
                f'{OLDEST_LIGHTNING}"'
            )
        return namespace
    raise ImportError(
        f"EveCallback needs Lightning, which is not installed. Install it with: {_INSTALL_HINT}"
    )


if TYPE_CHECKING:
    from lightning.pytorch import Callback, LightningModule, Trainer
else:
    _pl = _lightning_namespace()
    Callback, LightningModule, Trainer = _pl.Callback, _pl.LightningModule, _pl.Trainer

STATE_VERSION = 1
INTERVALS = ("step", "epoch")


class EveCallback(Callback):
    r"""Rescale every optimizer's LR from the training loss, with no change to the module.

    With no arguments, it attaches a :class:`~eve_scheduler.LossFeedbackScheduler`
    (rule ``"seed"``) to every optimizer and feeds it the training loss once per
    optimizer step. The LR used by optimizer step ``t`` (counting from 0) is

    .. math::

        \mathrm{lr}_t = \max(\mathrm{unscaled\_lr}_t \cdot \mathrm{factor}_t,\ \mathrm{min\_lr})

    where ``unscaled_lr_t`` is the LR the module's optimizer and schedule give at
    that step (a schedule from ``configure_optimizers`` keeps working, stepped by
    Lightning every step or every epoch) and ``factor_t`` is the rule's factor
    after the losses of steps ``0 .. t-1``.

    The loss fed for an optimizer step is the mean of the undivided losses that
    ``training_step`` returned (a tensor, or a dict with ``"loss"``) on the
    batches that made that step: with ``accumulate_grad_batches=k`` Lightning
    hands callbacks ``loss / k``, which is multiplied back by ``k``. Under
    distributed training, every rank is fed the mean over ranks, so that all
    ranks hold the same LR. An optimizer step that did not happen (a
    ``GradScaler`` that found non-finite gradients) feeds nothing. Under manual
    optimization, each driven optimizer is fed, at each of its steps, the mean of
    what ``training_step`` returned since its previous step. An LR that other code
    writes between steps (``ReduceLROnPlateau`` after validation) is kept, as a
    change of the unscaled LR by the same ratio. The feedback state is saved in
    checkpoints. ``docs/lightning.md`` has the details and the recipes.

    Args:
        rule: ``"seed"`` (default), ``"eve"`` or ``"trend"``; see :mod:`eve_scheduler.core`.
            Or a rule object with its hyper-parameters, ``SeedRule(beta=0.95)``.
        interval: ``"step"`` (default): one loss per optimizer step. ``"epoch"``:
            one value per training epoch, the mean training loss of the epoch (or
            the value of ``monitor`` at the end of the epoch).
        monitor: the name of a logged metric to feed instead of the training loss,
            e.g. ``"val_loss"`` with ``interval="epoch"``. With ``interval="step"``
            it must be logged from ``training_step``.
        optimizer_idx: drive only ``trainer.optimizers[optimizer_idx]``. By
            default every optimizer is driven, and each is fed the same loss.
        log_metrics: after every optimizer step, log through the module's logger
            (when the trainer has one) the factor, the rule's state (``d`` and ``v``
            for ``seed``, ``d_tilde`` for ``eve``), the LR the step used and the
            loss fed, as
            ``feedback/factor``, ``feedback/d``, ... (``feedback/opt{i}/...`` when
            the module has several optimizers).
        **scheduler_options: passed to :class:`~eve_scheduler.LossFeedbackScheduler`:
            ``min_lr``, ``strict``, ``lag``, ``capturable``, ``fused`` and the rule's
            hyper-parameters (``beta``, ``gamma``, ``k``, ``eps`` for ``seed``; ``c``,
            ``beta3`` for ``eve``; see ``TrendRule`` for ``trend``; ``f_star`` for all),
            with a rule given by name.

    Raises:
        ValueError: an unknown rule or interval, or an option out of range.
        TypeError: an option that ``LossFeedbackScheduler`` does not take.

    Example:
        >>> from eve_scheduler import EveCallback
        >>> callback = EveCallback(beta=0.95)  # then: Trainer(callbacks=[callback])
        >>> callback.schedulers  # one per optimizer, once training starts
        []
    """

    def __init__(
        self,
        rule: RuleSpec = "seed",
        *,
        interval: str = "step",
        monitor: str | None = None,
        optimizer_idx: int | None = None,
        log_metrics: bool = True,
        **scheduler_options: Any,
    ) -> None:
        if interval not in INTERVALS:
            raise ValueError(
                f"interval must be one of {list(INTERVALS)}, got interval={interval!r}"
            )
        if optimizer_idx is not None:
            optimizer_idx = check_integer("optimizer_idx", optimizer_idx)
        if "schedule" in scheduler_options:
            raise TypeError(
                "EveCallback takes no schedule=: return the schedule from configure_optimizers "
                "and the callback composes with it"
            )
        _check_scheduler_options(rule, scheduler_options)
        self.rule = rule
        self.interval = interval
        self.monitor = monitor
        self.optimizer_idx = optimizer_idx
        self.log_metrics = check_flag("log_metrics", log_metrics)
        self.scheduler_options = dict(scheduler_options)
        self._feedbacks: list[_OptimizerFeedback] = []
        self._global_step_at_batch_start = 0
        # What the end of a training epoch needs to know to feed ``monitor`` (epoch interval),
        # as epoch numbers: the last epoch whose end was handled, the last that validated in
        # this process, and the last that validated before the checkpoint resumed from.
        self._ended_epoch = -1
        self._validated_epoch: int | None = None
        self._validated_before_resume: int | None = None
        self._monitored_at_epoch_start: Any = None  # the metric object the epoch began with
        self._state_to_restore: dict[str, Any] | None = None
        self._module_hooks = _ModuleHooks()

    @property
    def state_key(self) -> str:
        # Only what is driven: a resume with another interval or monitor keeps the state
        # (and one with another rule fails loudly in LossFeedbackScheduler.load_state_dict).
        return self._generate_state_key(optimizer_idx=self.optimizer_idx)

    @property
    def schedulers(self) -> list[LossFeedbackScheduler]:
        """The feedback scheduler of each driven optimizer (empty before training)."""
        return [feedback.scheduler for feedback in self._feedbacks]

    # -- attaching and detaching -------------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Runs after the optimizers and their schedules are restored from a checkpoint.
        self._detach()
        self._ended_epoch = trainer.current_epoch - 1  # unless the checkpoint says otherwise
        self._validated_epoch = self._validated_before_resume = None
        driven = self._driven_optimizers(trainer)
        self._check_no_other_feedback(trainer, [optimizer for _, optimizer in driven])
        several = len(trainer.optimizers) > 1
        self._feedbacks = [
            _OptimizerFeedback(
                LossFeedbackScheduler(optimizer, self.rule, **self.scheduler_options),
                prefix=f"feedback/opt{index}/" if several else "feedback/",
                device=pl_module.device,
            )
            for index, optimizer in driven
        ]
        if self._state_to_restore is not None:
            self._restore(self._state_to_restore)
            self._state_to_restore = None
        self._module_hooks.wrap(
            pl_module,
            lr_scheduler_step=self._step_schedule,
            on_train_epoch_end=functools.partial(
                self._end_epoch, trainer=trainer, module=pl_module
            ),
        )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._detach()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._detach()

    def _detach(self) -> None:
        self._module_hooks.unwrap()
        for feedback in self._feedbacks:
            feedback.detach()

    def _driven_optimizers(self, trainer: Trainer) -> list[tuple[int, Optimizer]]:
        optimizers = list(trainer.optimizers)
        if not optimizers:
            raise ValueError(
                "EveCallback found no optimizer: configure_optimizers must return at least one"
            )
        if self.optimizer_idx is None:
            return list(enumerate(optimizers))
        if self.optimizer_idx >= len(optimizers):
            raise ValueError(
                f"EveCallback(optimizer_idx={self.optimizer_idx}) but the module has "
                f"{len(optimizers)} optimizer(s); pass an index below {len(optimizers)}"
            )
        return [(self.optimizer_idx, optimizers[self.optimizer_idx])]

    def _check_no_other_feedback(self, trainer: Trainer, optimizers: list[Optimizer]) -> None:
        """Refuse a second source of feedback on an optimizer that this callback drives."""
        for other in trainer.callbacks:  # type: ignore[attr-defined]
            if (
                isinstance(other, EveCallback)
                and other is not self
                and _may_share(self.optimizer_idx, other.optimizer_idx)
            ):
                raise ValueError(
                    "two EveCallbacks drive the same optimizer, which would apply the feedback "
                    "twice: give each its own EveCallback(optimizer_idx=...)"
                )
        driven = {id(optimizer) for optimizer in optimizers}
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if isinstance(scheduler, LossFeedbackScheduler) and id(scheduler.optimizer) in driven:
                raise ValueError(
                    "configure_optimizers already returns a LossFeedbackScheduler for an "
                    "optimizer that EveCallback drives, which would apply the feedback twice: "
                    "remove one of them, or pass EveCallback(optimizer_idx=...) to drive "
                    "another optimizer"
                )

    # -- training events ---------------------------------------------------------------

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._global_step_at_batch_start = trainer.global_step
        for feedback in self._feedbacks:
            feedback.keep_outside_changes()

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        for feedback in self._feedbacks:
            if feedback.optimizer is optimizer:
                feedback.before_optimizer_step()

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Under automatic optimization, an optimizer_step override may run the
        # closure and skip optimizer.step; Lightning then still steps the schedule.
        if pl_module.automatic_optimization:
            for feedback in self._feedbacks:
                feedback.unscale_unless_stepping()

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._feedbacks:
            return
        value = self._batch_value(trainer, pl_module, outputs)
        if (
            pl_module.automatic_optimization
            and trainer.global_step > self._global_step_at_batch_start
        ):
            # Lightning counted an optimizer step: if optimizer.step did not run (an
            # optimizer_step override that skipped it), the batch's losses are dropped.
            for feedback in self._feedbacks:
                feedback.attempted = True
        epoch_ends = (
            self.interval == "epoch" and self.monitor is None and _is_last_batch(trainer, batch_idx)
        )
        for feedback in self._feedbacks:
            feedback.end_batch(value)
            if feedback.stepped:
                window = feedback.take_window()
                if window is not None and self.interval == "step":
                    scale = self._scale(trainer, pl_module)
                    feedback.feed(self._reduce(trainer, pl_module, window.mean() * scale))
                elif window is not None:
                    feedback.add_to_epoch(window)
            if feedback.stepped:
                self._log(trainer, pl_module, feedback, on_step=True)
            if epoch_ends and feedback.epoch_count:
                self._feed_epoch_loss(trainer, pl_module, feedback)  # logged at the epoch's end
            feedback.end_step()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.interval == "epoch" and self.monitor is not None:
            self._monitored_at_epoch_start = trainer.callback_metrics.get(self.monitor)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # The epoch's mean loss is fed at its last batch. An epoch that ended otherwise (the
        # module's on_train_batch_start returned -1; a training_step(dataloader_iter) met
        # the end of the data) is fed here; one that training left unfinished (max_steps,
        # should_stop) keeps its sum, saved in checkpoints, for a resume. Either feed is
        # logged here, once, as an epoch-level metric.
        feeds = (
            self.interval == "epoch"
            and self.monitor is None
            and not _stopped_before_the_last_batch(trainer)
        )
        for feedback in self._feedbacks:
            if feeds and feedback.epoch_count:
                self._feed_epoch_loss(trainer, pl_module, feedback)
            if feedback.fed is not None:
                self._log(trainer, pl_module, feedback, on_step=False)

    def _end_epoch(
        self, end_epoch: Callable[[], None], *, trainer: Trainer, module: LightningModule
    ) -> None:
        """The module's ``on_train_epoch_end``, then the feed of ``monitor`` (which that
        hook may log), before the checkpoint callbacks run theirs.

        ``monitor`` is fed if it was logged in this epoch (see ``_logged_this_epoch``)."""
        end_epoch()
        if _stopped_before_the_last_batch(trainer):
            return  # max_steps, or a stop request: a resume runs the rest, and then this end
        metric = None
        if self.interval == "epoch" and self.monitor is not None and self._feedbacks:
            metric = self._logged_this_epoch(trainer)
        self._ended_epoch = max(self._ended_epoch, trainer.current_epoch)
        if metric is None:
            return
        value = self._reduce(trainer, module, _as_tensor(metric))
        for feedback in self._feedbacks:
            feedback.feed(value)
            self._log(trainer, module, feedback, on_step=False)

    def _logged_this_epoch(self, trainer: Trainer) -> Any:
        """``monitor`` at the end of a training epoch, or None where there is nothing to feed.

        Lightning keeps a metric that an epoch did not log (a validation metric in an
        epoch without validation, under ``check_val_every_n_epoch > 1``) as the same
        object; that is not fed. Nor is a metric missing because validation did not
        run. Missing after validation ran, or with no validation at all, it is an error.

        On resume, Lightning may run the end of the checkpoint's epoch again (fed
        before the checkpoint: not fed again), or skip the end of an epoch whose last
        batch the checkpoint was written at (a warning); a validation metric logged
        before the checkpoint is gone (a warning), as Lightning saves no metrics.
        """
        assert self.monitor is not None
        epoch, ended = trainer.current_epoch, self._ended_epoch
        if epoch <= ended:
            return None  # this epoch's end was handled before the checkpoint
        if epoch > ended + 1:
            self._warn_not_fed(
                f"epoch {ended + 1}'s {self.monitor!r}, if that epoch logged it,",
                "the checkpoint it resumed from was written before that epoch's end was handled "
                "(at its last batch, say), and Lightning went on without running it (nor a "
                "validation due there)",
            )
        metric = trainer.callback_metrics.get(self.monitor)
        validated = self._validated_epoch == epoch
        if metric is None and self._validated_before_resume == epoch and not validated:
            self._warn_not_fed(
                f"epoch {epoch}'s {self.monitor!r}",
                "the checkpoint it resumed from was written after that epoch's validation, "
                "and Lightning saves no logged metrics",
            )
            return None
        if metric is None and trainer.enable_validation and not validated:
            return None  # validation, which would log it, did not run in this epoch
        if metric is not None and metric is self._monitored_at_epoch_start:
            return None  # not logged in this epoch
        return self._monitored(trainer)  # raises if it is missing

    def _warn_not_fed(self, what: str, why: str) -> None:
        warnings.warn(
            f"EveCallback: {what} is not fed: {why}. "
            "To keep it, write checkpoints at the end of the training epoch: "
            "ModelCheckpoint(save_on_train_epoch_end=True)",
            RuntimeWarning,
            stacklevel=4,
        )

    def _step_schedule(self, step: Any, schedule: Any, metric: Any) -> None:
        """The module's ``lr_scheduler_step``: a schedule stepped where no optimizer step
        opened the unscaled window (a batch that was ``None``, or cut short by
        ``on_train_batch_start`` returning -1) is stepped on the unscaled LRs too.
        ``ReduceLROnPlateau`` keeps acting on the LR in use (kept by ratio)."""
        with ExitStack() as unscaled:
            if not isinstance(schedule, ReduceLROnPlateau):
                for feedback in self._feedbacks:
                    if feedback.optimizer is getattr(schedule, "optimizer", None):
                        unscaled.enter_context(feedback.unscaled_window())
            step(schedule, metric)

    def _feed_epoch_loss(
        self, trainer: Trainer, pl_module: LightningModule, feedback: _OptimizerFeedback
    ) -> None:
        scale = self._scale(trainer, pl_module)
        feedback.feed(self._reduce(trainer, pl_module, feedback.take_epoch() * scale))

    def _log(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        feedback: _OptimizerFeedback,
        *,
        on_step: bool,
    ) -> None:
        """Log ``feedback``'s metrics after an optimizer step (``on_step``) or after a
        feed at the end of an epoch (Lightning logs it at the epoch's last step).

        An epoch-level value is synced over ranks, as Lightning asks: it is the same
        on every rank, so their max (taken on the module's device) is that value."""
        if self.log_metrics and trainer.loggers:
            metrics = feedback.metrics()
            if on_step:
                pl_module.log_dict(metrics, on_step=True, on_epoch=False, batch_size=1)
            else:
                if trainer.world_size > 1:
                    metrics = {key: value.to(pl_module.device) for key, value in metrics.items()}
                pl_module.log_dict(
                    metrics,
                    on_step=False,
                    on_epoch=True,
                    reduce_fx="max",
                    sync_dist=True,
                    batch_size=1,
                )
        feedback.fed = None  # logged once, at its feed

    # -- where the fed value comes from ------------------------------------------------

    def _batch_value(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any
    ) -> Tensor | None:
        """This batch's loss as handed to callbacks, or the monitored metric, or None."""
        if self.monitor is not None:
            return None if self.interval == "epoch" else _as_tensor(self._monitored(trainer))
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is None:
            if not pl_module.automatic_optimization and any(f.stepped for f in self._feedbacks):
                raise ValueError(
                    "EveCallback needs the training loss, but training_step returned no loss: "
                    "return the loss (a tensor, or a dict with 'loss') from training_step, "
                    "or pass EveCallback(monitor=...) to feed a logged metric"
                )
            return None  # automatic optimization: a training_step that returned None
        return _as_tensor(loss)

    def _monitored(self, trainer: Trainer) -> Any:
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            where = "from training_step" if self.interval == "step" else "by the end of the epoch"
            raise ValueError(
                f"EveCallback(monitor={self.monitor!r}) found no metric {self.monitor!r}; "
                f"available metrics: {sorted(metrics)}. Log it {where} with "
                f"self.log({self.monitor!r}, value), or monitor one of those"
            )
        return metrics[self.monitor]

    def _scale(self, trainer: Trainer, pl_module: LightningModule) -> float:
        """What a fed loss is multiplied by: Lightning hands callbacks ``loss / k`` with
        ``accumulate_grad_batches=k`` (read at each feed: ``GradientAccumulationScheduler``
        changes it between epochs, and a window never spans two epochs)."""
        feeds_loss = self.monitor is None and pl_module.automatic_optimization
        return float(trainer.accumulate_grad_batches) if feeds_loss else 1.0

    @staticmethod
    def _reduce(trainer: Trainer, pl_module: LightningModule, value: Tensor) -> Tensor:
        """The mean of ``value`` over all ranks (one all-reduce; nothing on one device)."""
        if trainer.world_size <= 1:
            return value
        mean: Tensor = trainer.strategy.reduce(value.to(pl_module.device).clone(), reduce_op="mean")
        return mean

    # -- checkpoints -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain data: each driven optimizer's scheduler state and the losses not yet fed,
        the last epoch whose end was handled and the last epoch that validated."""
        if not self._feedbacks:
            return dict(self._state_to_restore or {})
        return {
            "version": STATE_VERSION,
            "optimizers": [feedback.state_dict() for feedback in self._feedbacks],
            "ended_epoch": self._ended_epoch,
            "validated_epoch": _latest(self._validated_epoch, self._validated_before_resume),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Called before the optimizers exist: the state is applied in on_train_start.
        if not state_dict:
            return
        version = state_dict.get("version")
        if version != STATE_VERSION:
            raise ValueError(
                f"cannot load an EveCallback state of version {version!r}; "
                f"this release reads version {STATE_VERSION}"
            )
        self._state_to_restore = dict(state_dict)

    def _restore(self, state_dict: dict[str, Any]) -> None:
        saved = state_dict["optimizers"]
        if len(saved) != len(self._feedbacks):
            raise ValueError(
                f"the checkpoint holds EveCallback state for {len(saved)} optimizer(s), "
                f"this run drives {len(self._feedbacks)}"
            )
        for feedback, state in zip(self._feedbacks, saved, strict=True):
            feedback.load_state_dict(state)
        self._ended_epoch = state_dict.get("ended_epoch", self._ended_epoch)
        self._validated_before_resume = state_dict.get("validated_epoch")


class _OptimizerFeedback:
    """One optimizer's feedback scheduler, its unscaled window and its unfed losses.

    The param groups hold the unscaled LR from the end of an optimizer step (or,
    where the gradients are computed outside ``optimizer.step``, from the end of
    the backward pass) until the end of the batch, so that a schedule stepped in
    between sees the LR it would see without feedback. The step pre-hook applies
    the factor again, so ``optimizer.step`` always uses the scaled LR.
    """

    def __init__(self, scheduler: LossFeedbackScheduler, prefix: str, device: torch.device) -> None:
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer
        self.prefix = prefix
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.device = device
        self.window: list[Tensor] = []  # values of the batches since the last optimizer step
        self.epoch_sum: Tensor | None = None
        self.epoch_count = 0
        self.attempted = False  # Lightning asked for an optimizer step in this batch
        self.stepped = False  # optimizer.step really ran in this batch
        self.fed: Tensor | None = None
        self.used_lrs: list[float | Tensor] = list(scheduler.get_last_lr())
        self._inside_step = False
        self._unscaled = ExitStack()
        self._unscaled_open = False
        self._handles: list[RemovableHandle] = [
            self.optimizer.register_step_pre_hook(self._before_step),
            self.optimizer.register_step_post_hook(self._after_step),
        ]

    # -- the unscaled window ---------------------------------------------------------

    def open_window(self) -> None:
        if not self._unscaled_open:
            self.keep_outside_changes()
            self._unscaled.enter_context(self.scheduler.unscaled())
            self._unscaled_open = True

    def close_window(self) -> None:
        # Whatever LRs the groups hold now become the unscaled LRs; the factor is re-applied.
        if self._unscaled_open:
            self._unscaled_open = False
            self._unscaled.close()

    @contextmanager
    def unscaled_window(self) -> Iterator[None]:
        """The unscaled window for the duration of a block, unless it is open already."""
        if self._unscaled_open:
            yield
            return
        self.open_window()
        try:
            yield
        finally:
            self.close_window()

    def keep_outside_changes(self) -> None:
        """Keep an LR that something else wrote while the window was closed.

        A change made outside the window (``ReduceLROnPlateau`` stepped after
        validation, the user's own code) stays for the next step: it is taken as
        a change of the unscaled LR by the same ratio. Tensor LRs are not checked.
        """
        if self._unscaled_open:
            return
        groups = self.optimizer.param_groups
        changed = [
            (group, lr_now, lr_written)
            for group, lr_written in zip(groups, self.scheduler.get_last_lr(), strict=False)
            if not isinstance(lr_now := group["lr"], Tensor)
            and not isinstance(lr_written, Tensor)
            and lr_now != lr_written
        ]
        if not changed:
            return
        with self.scheduler.unscaled():  # inside, the groups hold the unscaled LRs
            for group, lr_now, lr_written in changed:
                group["lr"] = group["lr"] * (lr_now / lr_written) if lr_written else lr_now

    # -- torch optimizer hooks and Lightning events ----------------------------------

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.close_window()
        self.keep_outside_changes()
        self.used_lrs = list(self.scheduler.get_last_lr())
        self._inside_step = True

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._inside_step = False
        self.stepped = True
        self.open_window()

    def before_optimizer_step(self) -> None:
        """Lightning's ``on_before_optimizer_step``: the step may still be skipped."""
        self.attempted = True
        self.unscale_unless_stepping()

    def unscale_unless_stepping(self) -> None:
        """Open the window when gradients are ready but ``optimizer.step`` is not running.

        Where the closure runs outside ``optimizer.step`` (a ``GradScaler``, an
        ``optimizer_step`` override, accumulation), the step may not happen, and a
        schedule stepped after it must still see the unscaled LR; if the step
        does happen, its pre-hook applies the factor again first.
        """
        if not self._inside_step:
            self.open_window()

    def end_batch(self, value: Tensor | None) -> None:
        self.close_window()
        if value is not None:
            self.window.append(value)

    def take_window(self) -> Tensor | None:
        """The values of the batches that made this step, stacked on one device."""
        values, self.window = self.window, []
        if not values:
            return None
        return torch.stack([v.to(self.device, self.dtype) for v in values])

    def add_to_epoch(self, window: Tensor) -> None:
        total = window.sum()
        self.epoch_sum = total if self.epoch_sum is None else self.epoch_sum + total
        self.epoch_count += window.numel()

    def take_epoch(self) -> Tensor:
        assert self.epoch_sum is not None
        mean = self.epoch_sum / self.epoch_count
        self.epoch_sum, self.epoch_count = None, 0
        return mean

    def end_step(self) -> None:
        if self.attempted and not self.stepped:
            self.window = []  # the optimizer step these losses led to was skipped
        self.attempted = False
        self.stepped = False
        self._inside_step = False  # over, even if optimizer.step raised and was caught

    def feed(self, value: Tensor) -> None:
        self.scheduler.step(value)
        self.fed = value

    def metrics(self) -> dict[str, Tensor]:
        """What to log after an optimizer step; host numbers as CPU tensors (no copy to
        the device, which would wait for it)."""
        scheduler = self.scheduler
        out: dict[str, float | Tensor] = {f"{self.prefix}factor": scheduler.factor}
        for name, value in scheduler.state._asdict().items():
            if name not in ("t", "prev_loss"):
                out[f"{self.prefix}{name}"] = value
        if len(self.used_lrs) == 1:
            out[f"{self.prefix}lr"] = self.used_lrs[0]
        else:
            for index, lr in enumerate(self.used_lrs):
                out[f"{self.prefix}lr/pg{index}"] = lr
        if self.fed is not None:
            out[f"{self.prefix}loss"] = self.fed
        return {key: _host_tensor(value) for key, value in out.items()}

    def detach(self) -> None:
        self.close_window()
        for handle in self._handles:
            handle.remove()
        self._handles = []

    # -- checkpoints -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        self.keep_outside_changes()  # an LR written since the last batch started, e.g. at
        # the end of the epoch, is saved as the checkpointed optimizer holds it
        return {
            "scheduler": self.scheduler.state_dict(),
            "window": [loss_to_float(value) for value in self.window],
            "epoch_sum": 0.0 if self.epoch_sum is None else loss_to_float(self.epoch_sum),
            "epoch_count": self.epoch_count,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        self.window = [self._tensor(value) for value in state["window"]]
        self.epoch_count = int(state["epoch_count"])
        self.epoch_sum = self._tensor(state["epoch_sum"]) if self.epoch_count else None
        self.used_lrs = list(self.scheduler.get_last_lr())

    def _tensor(self, value: float) -> Tensor:
        return torch.tensor(float(value), dtype=self.dtype, device=self.device)


class _ModuleHooks:
    """LightningModule hooks wrapped for the duration of training.

    Lightning calls ``pl_module.<hook>`` for ``lr_scheduler_step`` and for
    ``on_train_epoch_end`` (after the callbacks' own ``on_train_epoch_end``, before the
    checkpoint callbacks'); a :class:`_Hook` set as an instance attribute of the same
    name wraps the module's method. ``unwrap`` takes it out again, also when another
    callback's hook has wrapped it since.
    """

    def __init__(self) -> None:
        self._module: Any = None
        self._hooks: dict[str, _Hook] = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> _ModuleHooks:
        return _ModuleHooks()  # a copy of the callback wraps nothing (yet)

    def __reduce__(self) -> tuple[type[_ModuleHooks], tuple[()]]:
        return _ModuleHooks, ()

    def wrap(self, module: Any, **wrappers: Callable[..., None]) -> None:
        self.unwrap()
        self._module = module
        for name, wrapper in wrappers.items():
            hook = _Hook(getattr(module, name), wrapper, module.__dict__.get(name, _MISSING))
            object.__setattr__(module, name, hook)
            self._hooks[name] = hook

    def unwrap(self) -> None:
        for name, hook in self._hooks.items():
            outer = self._module.__dict__.get(name)
            while isinstance(outer, _Hook) and outer.original is not hook:
                outer = outer.original
            if isinstance(outer, _Hook):  # another callback's hook wraps ours
                outer.original, outer.previous = hook.original, hook.previous
            elif hook.previous is _MISSING:
                self._module.__dict__.pop(name, None)
            else:
                object.__setattr__(self._module, name, hook.previous)
        self._module, self._hooks = None, {}


class _Hook:
    """``wrapper(original, *args)`` in place of a module's hook ``original``.

    A copy of the module (``copy.deepcopy``, as EMA and SWA callbacks make, or a
    pickle) gets the module's own method, bound to the copy, instead: not the
    callback and the trainer behind the wrapper.
    """

    def __init__(self, original: Callable[..., Any], wrapper: Callable[..., Any], previous: Any):
        self.original = original
        self.wrapper = wrapper
        self.previous = previous  # the module's instance attribute of that name, if any

    @property
    def __wrapped__(self) -> Callable[..., Any]:  # for Lightning's is_overridden
        inner = self.original
        while isinstance(inner, _Hook):  # another callback's hook
            inner = inner.original
        return inner

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrapper(self.original, *args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.original, memo)

    def __reduce__(self) -> tuple[Callable[[Any], Any], tuple[Any]]:
        return _identity, (self.original,)


def _identity(value: Any) -> Any:
    return value


_MISSING = object()


class _ParamGroups:
    """Stands in for an optimizer to check the scheduler options before training."""

    def __init__(self, count: int, tensor_lrs: bool) -> None:
        self.param_groups: list[dict[str, Any]] = [
            {"lr": torch.tensor(1.0) if tensor_lrs else 1.0} for _ in range(count)
        ]


def _check_scheduler_options(rule: RuleSpec, options: dict[str, Any]) -> None:
    per_group = min_lr_per_group(options.get("min_lr", 0.0))
    count = 1 if per_group is None else max(len(per_group), 1)
    groups = _ParamGroups(count, tensor_lrs=bool(options.get("capturable")))
    LossFeedbackScheduler(groups, rule, **options)


def _may_share(index: int | None, other: int | None) -> bool:
    """Whether two callbacks with these ``optimizer_idx`` may drive the same optimizer."""
    return index is None or other is None or index == other


def _as_tensor(value: Any) -> Tensor:
    """A scalar loss or metric as a detached 0-d tensor (no host read)."""
    check_scalar(value)
    if isinstance(value, Tensor):
        return value.detach().reshape(())
    return torch.tensor(loss_to_float(value), dtype=torch.float64)


def _latest(*epochs: int | None) -> int | None:
    """The latest of the epoch numbers that are not None, or None."""
    return max((epoch for epoch in epochs if epoch is not None), default=None)


def _host_tensor(value: float | Tensor) -> Tensor:
    """A tensor as it is; a Python number as a 0-d float64 tensor on the CPU."""
    return value if isinstance(value, Tensor) else torch.tensor(value, dtype=torch.float64)


def _stopped_before_the_last_batch(trainer: Trainer) -> bool:
    """Whether training stopped (``max_steps``, ``should_stop``) in the middle of the epoch."""
    stopped = trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step
    progress = trainer.fit_loop.epoch_loop.batch_progress
    ran_all = progress.is_last_batch or progress.current.ready >= trainer.num_training_batches
    return bool(stopped and not ran_all)


def _is_last_batch(trainer: Trainer, batch_idx: int) -> bool:
    """Whether this is the last training batch of the epoch."""
    is_last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
    return bool(batch_idx + 1 >= trainer.num_training_batches or is_last)


__all__ = ["EveCallback"]
