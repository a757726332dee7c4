r"""How many conversions does pCTR × pCVR predict when both are exactly right? The sweep's worlds, no training.

    python benchmarks/entire_space_ctcvr.py [--worlds default,low_ctr,...] [--seeds 0,1,2] [--row_fraction 1.0]

Every method serves pCTCVR = pCTR × pCVR (the serving signature's contract).
A debiasing method's pCVR aims at the entire-space CVR, the probability that
an impression would convert if clicked. Where clicks and conversions share a
cause no feature carries (the simulator's hidden intent), the conversions a
log holds are E[click · conversion], which is more than E[click] · E[conversion]
given the features; so even the best possible model of that kind, right
about both, predicts fewer conversions than the log has. This prints by how
much, from the simulator's ground truth (`simulate.features_only_truth`: the
expectations over the hidden intent given the features), on the test split
of each world and seed (the first 20% of the impressions, as
`debiasing_sweep.py` splits them; one day of the world at its full size,
where the sweep's quick mode takes part of the rows and two worlds run three
days):

- Σ pCTR·pCVR / expected conversions: the best pCTR times the best
  entire-space pCVR, against Σ E[click · conversion | features];
- the same against the test split's conversions, the total that issue-style
  calibration bounds check (within ±5%, or 2/√conversions where that is
  wider; "inside" says whether it is).

A clicked-space pCVR (naive's target, E[conversion | click, features])
gives exactly the conversions by construction. docs/benchmarks.md,
"Calibration of the served outputs", quotes the table.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from debiasing_sweep import SIZED_WORLDS, WORLDS, calibration_bound  # noqa: E402 (the sibling benchmark's)

from tfcvr.data import simulate  # noqa: E402

TEST_FRACTION = 0.2  # the sweep's eval_fraction: the first 20% of the impressions are its test split


def world_seed(world: str, seed: int, row_fraction: float = 1.0) -> dict:
    """The ratios above for one world and seed."""
    settings, rows = WORLDS[world]
    rows = int(rows * row_fraction)
    config = simulate.SimulationConfig(**settings)
    test = slice(0, max(1, int(round(rows * TEST_FRACTION))))
    truth = {name: values[test] for name, values in simulate.features_only_truth(rows, seed, config).items()}
    conversions = int(simulate.simulate(rows, seed, config)["conversion"][test].sum())
    served = float(np.sum(truth["ctr"] * truth["cvr"]))
    width = calibration_bound(conversions)
    return {
        "world": world,
        "seed": seed,
        "selection_strength": config.selection_strength,
        "test_rows": test.stop,
        "conversions": conversions,
        "vs_expected": served / float(np.sum(truth["ctcvr"])),
        "vs_conversions": served / conversions if conversions else float("nan"),
        "bound": width,
        "inside": bool(conversions) and abs(served / conversions - 1.0) <= width,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| world | seed | hidden intent | test conversions | Σ pCTR·pCVR / expected | / test conversions"
        " | bound | inside |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['world']} | {r['seed']} | {r['selection_strength']:g} | {r['conversions']} |"
            f" {r['vs_expected']:.3f} | {r['vs_conversions']:.3f} | ±{r['bound']:.3f} |"
            f" {'yes' if r['inside'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worlds", default=",".join(SIZED_WORLDS), help=f"Comma-separated, of {list(WORLDS)}.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--row_fraction", type=float, default=1.0, help="Of each world's impressions (WORLDS).")
    args = parser.parse_args(argv)
    worlds = [w for w in args.worlds.split(",") if w]
    unknown = sorted(set(worlds) - set(WORLDS))
    if unknown:
        parser.error(f"--worlds: unknown {unknown}; expected some of {list(WORLDS)}")
    if not 0.0 < args.row_fraction <= 1.0:
        parser.error(f"--row_fraction must be in (0, 1]. Received: {args.row_fraction}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print(table([world_seed(world, seed, args.row_fraction) for world in worlds for seed in seeds]))


if __name__ == "__main__":
    main()
