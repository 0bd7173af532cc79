"""EveCallback under real two-process DDP on the CPU (gloo): every rank holds the same LR.

Lightning's ``strategy="ddp"`` launches the script again for the second rank, so
the training runs in a subprocess from a script with a ``__main__`` guard; each rank
writes the LR of each optimizer step and its own losses to a file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reference import factors_before_each_loss

SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import torch
    import lightning.pytorch as pl
    from torch.nn import functional
    from torch.utils.data import DataLoader, TensorDataset

    from eve_scheduler import EveCallback

    torch.set_num_threads(1)


    class Regressor(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(10, 1)
            self.losses, self.lrs = [], []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = functional.mse_loss(self.net(x), y)
            self.losses.append(loss.item())
            self.log("epoch_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def on_train_start(self):
            self.trainer.optimizers[0].register_step_pre_hook(
                lambda opt, args, kwargs: self.lrs.append(opt.param_groups[0]["lr"])
            )


    def main(out, monitor):
        from sklearn.datasets import load_diabetes

        x, y = load_diabetes(return_X_y=True)
        x = torch.tensor(x[:192], dtype=torch.float32) * 10
        y = torch.tensor((y[:192] - y.mean()) / y.std(), dtype=torch.float32).unsqueeze(1)
        loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 6 batches per rank
        model = Regressor()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp",
            max_epochs=1 if monitor == "none" else 2,
            callbacks=[
                EveCallback() if monitor == "none"
                else EveCallback(interval="epoch") if monitor == "epoch_mean"
                else EveCallback(interval="epoch", monitor="epoch_loss")
            ],
            logger=pl.loggers.CSVLogger(out, name="run", version=0),
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, loader)
        with open(f"{out}/rank{trainer.global_rank}.json", "w") as stream:
            json.dump({"lrs": model.lrs, "losses": model.losses}, stream)
        torch.distributed.barrier()  # rank 0 exits once every rank has written its file
        # exiting with the gloo group alive can abort the process ("terminate called
        # without an active exception", pytorch/pytorch#190489)
        torch.distributed.destroy_process_group()


    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2])
    """
)


def run_ddp(tmp_path: Path, monitor: str) -> tuple[list[dict[str, list[float]]], str]:
    """Both ranks' recorded LRs and losses, and the run's stderr."""
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        # Lightning starts rank 1 as a child of rank 0 in the same session. Rarely, rank 1
        # never exits: torch's ~ProcessGroupGloo joins its worker thread while holding the
        # GIL that the thread waits for (seen with torch 2.4.1, after the results were
        # written), and it held the pipes of a capture_output run open for ever. So stderr
        # goes to a file, and whatever is left of the session once rank 0 exits is killed.
        process = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), monitor],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=300)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    assert returncode == 0, log.read_text()[-3000:]
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)], log.read_text()


@pytest.mark.slow
def test_two_process_ddp_feeds_every_rank_the_mean_loss(tmp_path: Path) -> None:
    ranks, _ = run_ddp(tmp_path, "none")

    assert len(ranks[0]["lrs"]) == 6
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each rank sees its own data ...
    assert ranks[0]["lrs"] == ranks[1]["lrs"]  # ... and both hold the same LR
    mean_losses = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"], strict=True)]
    assert ranks[0]["lrs"] == [0.1 * f for f in factors_before_each_loss(mean_losses)]


@pytest.mark.slow
@pytest.mark.parametrize("monitor", ["epoch_loss", "epoch_mean"])
def test_two_process_ddp_feeds_an_epoch_value_and_logs_it_without_warnings(
    tmp_path: Path, monitor: str
) -> None:
    # "epoch_loss": the module's epoch-level log of its loss, as monitor; "epoch_mean":
    # the callback's own mean of the epoch's losses. Both are the mean over ranks and steps.
    ranks, stderr = run_ddp(tmp_path, monitor)

    assert "sync_dist" not in stderr  # Lightning's advice for unsynced epoch-level logs
    assert ranks[0]["lrs"] == ranks[1]["lrs"]
    assert [len(rank["losses"]) for rank in ranks] == [12, 12]  # 2 epochs of 6 steps
    epoch_means = [
        sum(rank["losses"][6 * epoch + i] for rank in ranks for i in range(6)) / 12
        for epoch in (0, 1)
    ]
    factors = factors_before_each_loss(epoch_means)
    assert ranks[0]["lrs"] == pytest.approx([0.1 * factors[t // 6] for t in range(12)], rel=1e-6)
    with open(tmp_path / "run" / "version_0" / "metrics.csv") as stream:
        fed = [row for row in csv.DictReader(stream) if row.get("feedback/loss")]
    assert [int(row["step"]) for row in fed] == [5, 11]
    assert [float(row["feedback/loss"]) for row in fed] == pytest.approx(epoch_means, rel=1e-6)
