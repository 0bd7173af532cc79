"""What the commands share: the rule options and the error that ends a command."""

from __future__ import annotations

import argparse
from dataclasses import fields

from eve_scheduler.core import RULES, hparams_of, make_rule


class CliError(Exception):
    """A problem the user can fix; ``main`` prints it on stderr and exits with 2."""


def add_rule_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--rule`` and the repeatable ``--hparam NAME=VALUE`` to a command."""
    parser.add_argument(
        "--rule",
        default="seed",
        choices=sorted(RULES),
        help="the feedback rule (default: seed)",
    )
    parser.add_argument(
        "--hparam",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyper-parameter of the rule, e.g. --hparam beta=0.95 (repeatable); "
        + "; ".join(
            f"{name} takes {', '.join(f.name for f in fields(cls))}"
            for name, cls in sorted(RULES.items())
        ),
    )


def rule_options(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """The rule name and its hyper-parameters, checked by building the rule once.

    Raises:
        CliError: a malformed ``--hparam``, an unknown name, or a value out of range.
    """
    hparams: dict[str, float] = {}
    for item in args.hparam:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"--hparam {item!r}: expected NAME=VALUE, e.g. --hparam beta=0.95")
        try:
            hparams[name] = float(text)
        except ValueError:
            raise CliError(f"--hparam {item!r}: {text.strip()!r} is not a number") from None
    try:
        make_rule(args.rule, **hparams)
    except ValueError as error:
        raise CliError(str(error)) from None
    return args.rule, hparams


def describe_rule(rule: str, hparams: dict[str, float]) -> str:
    """The rule with all its hyper-parameters, e.g. ``seed(beta=0.9, gamma=0.99, ...)``."""
    values = hparams_of(make_rule(rule, **hparams))
    return f"{rule}(" + ", ".join(f"{name}={value:g}" for name, value in values.items()) + ")"
