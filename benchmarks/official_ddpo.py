r"""The official DDPO PyTorch code's training rate, the reference column of benchmarks/throughput.py.

    <a Python with PyTorch> benchmarks/official_ddpo.py --checkout DDPO --csv train.csv [--warmup 30] [--steps 200]

Runs in a Python that has PyTorch, not tfcvr's (benchmarks/throughput.py
starts it with --official_ddpo and --torch_python). It imports `main.py` of a
checkout of TL-UESTC/DDPO (the code of Su et al., SIGIR 2024,
https://doi.org/10.1145/3626772.3657817) and trains that repository's
Ali-CCP `DDPO` model through its own `train()` function, unmodified, on its
own `AliCCPDataset` read from --csv (click, conversion, then the id fields).
What its `main()` leaves out is taken from its argument defaults and from the
MTReclib loop its code was cut from: DataLoader(batch 2048, shuffle=True,
num_workers=4), Adam(lr 1e-3, weight_decay 1e-6), BCELoss(reduction="none")
(its loss weights rows element-wise, which only an unreduced criterion
allows), embedding 5, bottoms 128-64, towers 64-32, dropout 0.2, seed 999.
PyTorch's default threads (one per core). Nothing of the checkout is copied
or changed.

A step's time is the gap between two batches its loop takes from the loader
(the previous step plus the wait for the next batch), as throughput.py times
tfcvr's steps; examples/s from the median step after --warmup steps. The
loader is read epoch after epoch until --warmup + --steps batches are done. Prints
one JSON object: {"model": "official_ddpo", "examples_per_s", ..., "torch",
"threads", "loader_workers"}.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import step_times  # noqa: E402


class TimedBatches:
    """`count` batches of the DataLoader, epoch after epoch, noting when each is handed to the training loop."""

    def __init__(self, loader, count):
        self.loader, self.count, self.stamps = loader, count, []

    def __iter__(self):
        while len(self.stamps) < self.count:
            for batch in self.loader:  # a new epoch starts the loader's workers again, as its loop would
                self.stamps.append(time.perf_counter())
                yield batch
                if len(self.stamps) == self.count:
                    break
        self.stamps.append(time.perf_counter())  # the last step's end


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkout", required=True, help="A checkout of https://github.com/TL-UESTC/DDPO.")
    parser.add_argument("--csv", required=True, help="Ali-CCP-shaped rows: click, conversion, then the id fields.")
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--loader_workers", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.checkout, "main.py")):
        sys.exit(f"--checkout={args.checkout}: no main.py there; expected a checkout of TL-UESTC/DDPO.")
    import torch  # a missing PyTorch is the caller's message to give

    sys.path.insert(0, os.path.abspath(args.checkout))
    import main as official  # the checkout's main.py: seeds torch with 999 on import

    dataset = official.AliCCPDataset(args.csv)
    model = official.DDPO_C(
        dataset.field_dims,
        dataset.numerical_num,
        embed_dim=5,
        bottom_mlp_dims=(128, 64),
        tower_mlp_dims=(64, 32),
        task_num=3,
        dropout=0.2,
    )  # as its get_model() builds "ddpo" for Ali-CCP
    optimizer = torch.optim.Adam(params=model.parameters(), lr=1e-3, weight_decay=1e-6)
    criterion = torch.nn.BCELoss(reduction="none")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.loader_workers
    )
    batches = TimedBatches(loader, args.warmup + args.steps)
    official.train(model, optimizer, batches, criterion, torch.device("cpu"), 1.0, 1.0, 1.0, 1.0)
    gaps = [later - earlier for earlier, later in zip(batches.stamps, batches.stamps[1:])][args.warmup :]
    result = {
        "model": "official_ddpo",
        **step_times.summary(gaps, args.batch_size),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": args.batch_size,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loader_workers": args.loader_workers,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
