"""The benchmark tasks: real bundled data, a fixed split, a small model, an optimizer.

Every task is built from data that ships with a package (scikit-learn's bundled
datasets, a source file of the Python standard library), split once with a fixed
seed and standardized with statistics of the training part only. Nothing is
downloaded.

Base learning rates come from a pilot sweep of a constant LR only (seeds 0-2,
grid 1-2-5 per decade from 1e-4 to 5, ``python -m benchmarks.quality.pilot``):
the base LR of each task is the grid LR with the lowest geometric-mean final
training loss, so the multiplier sweep 0.25x-8x probes an LR up to 4x too low
and up to 8x too high. The target loss for "steps to target" was fixed by the
same pilot: the median training loss of the constant run at the base LR between
40% and 60% of its steps, rounded to two digits. No feedback rule took part in
choosing either number.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

OptimizerFactory = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]


@dataclass(frozen=True)
class Data:
    """A fixed train/test split; ``x_eval``/``y_eval`` is what the training loss is measured on."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    x_eval: Tensor
    y_eval: Tensor


@dataclass(frozen=True)
class Task:
    """One training problem with everything a run needs except the LR schedule.

    Attributes:
        name: short name used on the command line and in the tables.
        description: one line for the README.
        base_lr: the LR that the multipliers scale (see the module docstring).
        steps: optimizer steps per run.
        batch_size: minibatch size, or ``None`` for full-batch (deterministic) training.
        target_loss: the training loss that "steps to target" waits for.
        metric: name of the test metric.
        higher_is_better: whether a larger test metric is better.
        load: returns the data split.
        build_model: returns a freshly initialized model (uses the global torch seed).
        build_optimizer: returns the optimizer for the given parameters and LR.
        loss: the data term of the training loss.
        test_metric: the test metric of a model on inputs and targets.
        l2: weight of an explicit L2 penalty ``l2 / 2 * sum(p**2)`` added to the
            training loss (so that the loss has a floor above zero).
    """

    name: str
    description: str
    base_lr: float
    steps: int
    batch_size: int | None
    target_loss: float
    metric: str
    higher_is_better: bool
    load: Callable[[], Data]
    build_model: Callable[[Data], nn.Module]
    build_optimizer: OptimizerFactory
    loss: Callable[[Tensor, Tensor], Tensor]
    test_metric: Callable[[nn.Module, Tensor, Tensor], float]
    l2: float = 0.0

    def objective(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The training loss: the data term plus the L2 penalty, if any."""
        loss = self.loss(model(x), y)
        if self.l2:
            loss = loss + self.l2 / 2 * sum(p.pow(2).sum() for p in model.parameters())
        return loss


# -- data ------------------------------------------------------------------------------


def _standardized_split(
    x: object, y: object, *, classification: bool, standardize_target: bool = False
) -> Data:
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y if classification else None
    )
    x_train = torch.tensor(x_tr, dtype=torch.float32)
    x_test = torch.tensor(x_te, dtype=torch.float32)
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if classification:
        y_train = torch.tensor(y_tr, dtype=torch.long)
        y_test = torch.tensor(y_te, dtype=torch.long)
    else:
        y_train = torch.tensor(y_tr, dtype=torch.float32).unsqueeze(1)
        y_test = torch.tensor(y_te, dtype=torch.float32).unsqueeze(1)
        if standardize_target:
            y_mean, y_std = y_train.mean(), y_train.std()
            y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std
    return Data(x_train, y_train, x_test, y_test, x_train, y_train)


def load_digits_data() -> Data:
    """8x8 handwritten digits (1,797 images, 10 classes), 75/25 stratified split."""
    digits = load_digits()
    return _standardized_split(digits.data, digits.target, classification=True)


def load_diabetes_data() -> Data:
    """Diabetes progression (442 patients, 10 features), target standardized."""
    diabetes = load_diabetes()
    return _standardized_split(
        diabetes.data, diabetes.target, classification=False, standardize_target=True
    )


def load_breast_cancer_data() -> Data:
    """Wisconsin breast cancer (569 tumours, 30 features, 2 classes)."""
    cancer = load_breast_cancer()
    return _standardized_split(cancer.data, cancer.target, classification=True)


CHAR_CONTEXT = 16
CHAR_EVAL_WINDOWS = 2048


def char_corpus_path() -> Path:
    """The text of the char-LM task: the standard library's ``argparse.py``."""
    return Path(argparse.__file__)


def load_char_data() -> Data:
    """Next-character prediction on ``argparse.py``: first 90% train, last 10% test.

    Inputs are the previous ``CHAR_CONTEXT`` character ids; the training loss is
    measured on a fixed random subset of ``CHAR_EVAL_WINDOWS`` training windows.
    """
    text = char_corpus_path().read_text(encoding="utf-8")
    vocab = sorted(set(text))
    ids = torch.tensor([vocab.index(ch) for ch in text], dtype=torch.long)
    windows = ids.unfold(0, CHAR_CONTEXT + 1, 1)
    split = int(0.9 * len(windows))
    train, test = windows[:split], windows[split + CHAR_CONTEXT :]  # no overlap
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    evaluation = train[pick[:CHAR_EVAL_WINDOWS]]
    return Data(
        train[:, :-1],
        train[:, -1],
        test[:, :-1],
        test[:, -1],
        evaluation[:, :-1],
        evaluation[:, -1],
    )


# -- models, losses, metrics --------------------------------------------------------------


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class CharMLP(nn.Module):
    """Embed the context characters, concatenate, one hidden layer, next-char logits."""

    def __init__(self, vocab: int, context: int = CHAR_CONTEXT, embed: int = 24, hidden: int = 256):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.head = _mlp(context * embed, hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.head(self.embed(x).flatten(1))
        return logits


def _vocab_size(data: Data) -> int:
    return int(max(data.x_train.max(), data.y_train.max(), data.x_test.max())) + 1


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of correctly classified examples."""
    return float((model(x).argmax(1) == y).float().mean())


def mse(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Mean squared error (in units of the standardized target)."""
    return float(nn.functional.mse_loss(model(x), y))


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Mean cross-entropy in nats."""
    return float(nn.functional.cross_entropy(model(x), y))


# -- the tasks ----------------------------------------------------------------------------

TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        Task(
            name="digits",
            description=(
                "digits: MLP 64-128-10, cross-entropy + L2 1e-3, Adam, minibatch 64 "
                "(21 steps per epoch)"
            ),
            base_lr=0.01,
            steps=800,
            batch_size=64,
            target_loss=0.071,
            metric="test accuracy",
            higher_is_better=True,
            load=load_digits_data,
            build_model=lambda data: _mlp(64, 128, 10),
            build_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
            loss=nn.functional.cross_entropy,
            test_metric=accuracy,
            l2=1e-3,
        ),
        Task(
            name="diabetes",
            description=(
                "diabetes: MLP 10-64-1, MSE, SGD momentum 0.9, minibatch 32 (10 steps per epoch)"
            ),
            base_lr=0.02,
            steps=600,
            batch_size=32,
            target_loss=0.28,
            metric="test MSE",
            higher_is_better=False,
            load=load_diabetes_data,
            build_model=lambda data: _mlp(10, 64, 1),
            build_optimizer=lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
            loss=nn.functional.mse_loss,
            test_metric=mse,
        ),
        Task(
            name="breast_cancer",
            description=(
                "breast_cancer: MLP 30-32-2, cross-entropy, AdamW, full batch (deterministic)"
            ),
            base_lr=0.05,
            steps=500,
            batch_size=None,
            target_loss=1.1e-4,
            metric="test accuracy",
            higher_is_better=True,
            load=load_breast_cancer_data,
            build_model=lambda data: _mlp(30, 32, 2),
            build_optimizer=lambda params, lr: torch.optim.AdamW(params, lr=lr),
            loss=nn.functional.cross_entropy,
            test_metric=accuracy,
        ),
        Task(
            name="char_lm",
            description=(
                "char_lm: next character of the stdlib's argparse.py, 16-char context, "
                "embedding + MLP 384-256-vocab, Adam, minibatch 64"
            ),
            base_lr=5e-3,
            steps=1000,
            batch_size=64,
            target_loss=1.4,
            metric="test nats/char",
            higher_is_better=False,
            load=load_char_data,
            build_model=lambda data: CharMLP(_vocab_size(data)),
            build_optimizer=lambda params, lr: torch.optim.Adam(params, lr=lr),
            loss=nn.functional.cross_entropy,
            test_metric=cross_entropy,
        ),
    ]
}


def minibatches(data: Data, batch_size: int | None, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless minibatches, reshuffled every epoch; the whole training set if no batch size."""
    n = len(data.x_train)
    if batch_size is None:
        while True:
            yield data.x_train, data.y_train
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):  # drop the ragged last batch
            index = order[start : start + batch_size]
            yield data.x_train[index], data.y_train[index]


def steps_per_epoch(task: Task, data: Data) -> int:
    """Optimizer steps in one pass over the training set (1 for full batch)."""
    if task.batch_size is None:
        return 1
    return len(data.x_train) // task.batch_size
