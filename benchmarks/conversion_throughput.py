r"""Throughput and memory of the raw Ali-CCP converter on a synthetic raw release.

    python benchmarks/conversion_throughput.py [--rows 2000000] [--rows_per_user 58] [--single_value list]
        [--max_list_length 64] [--runner DirectRunner|InProcess] [--work_dir DIR] [--reuse] [--json]

Writes a sample_skeleton / common_features pair in the real format
(shared/data/FORMATS.md §1.3-1.6): impressions grouped by their
common_feature_index, about 58 per index, ~13 features per impression (item
fields, 3-14 intention nodes, 0-3 values per combination field) and ~518 per
common row (user profile fields and the four two-week behaviour bags), ids
drawn from vocabularies of the published sizes. Then runs
`python -m tfcvr.data.convert aliccp` on it (`--runner`: the Beam
DirectRunner on every core, the default, or InProcess) and prints rows/s
(skeleton lines per second over the whole conversion, start-up and the
common-file join included), the input and output sizes, and the peak
resident memory of this process and of the largest Beam worker process.

The full train split (42.3M impressions, 10.9 GB skeleton, 8.6 GB common
file) takes about 42.3M / rows_per_second seconds at the measured rate. In
process, memory grows with the number of common rows (the offset index), not
with the skeleton; the local DirectRunner holds the shuffled common rows in
its own memory.
"""

import argparse
import json
import os
import random
import resource
import shutil
import tempfile
import time

from tfcvr.data.convert import cli

# Distinct values per field reported for the full data set (FORMATS.md §1.6).
VOCABULARY = {
    "101": 238_635,
    "121": 98,
    "122": 14,
    "124": 3,
    "125": 8,
    "126": 4,
    "127": 4,
    "128": 3,
    "129": 5,
    "109_14": 5_853,
    "110_14": 105_622,
    "127_14": 53_843,
    "150_14": 31_858,
    "205": 467_298,
    "206": 6_929,
    "207": 263_942,
    "210": 80_232,
    "216": 106_399,
    "508": 5_888,
    "509": 104_830,
    "702": 51_878,
    "853": 37_148,
    "301": 3,
}
# Values per common row of the behaviour bags: means chosen so a common row has ~518 features.
BAG_SIZES = {"109_14": 70, "110_14": 205, "127_14": 125, "150_14": 110}
PROFILE = ("101", "121", "122", "124", "125", "126", "127", "128", "129")


def _feature(rng, field, value=1.0):
    return f"{field}\x02{rng.randrange(VOCABULARY[field])}\x03{value}"


def _common_line(rng, key):
    features = [_feature(rng, f) for f in PROFILE]
    for field, mean in BAG_SIZES.items():
        count = max(1, int(rng.gauss(mean, mean / 3)))
        features += [_feature(rng, field, float(rng.randrange(1, 20))) for _ in range(count)]
    return f"{key},{len(features)},{chr(1).join(features)}\n"


def _skeleton_line(rng, sample_id, key):
    click = int(rng.random() < 0.039)
    conversion = int(click and rng.random() < 0.0055) or int(rng.random() < 0.0001)  # a few illegal (0, 1)
    features = [_feature(rng, f) for f in ("205", "206", "207", "216", "301")]
    features += [_feature(rng, "210") for _ in range(rng.randint(3, 14))]
    for field in ("508", "509", "702", "853"):
        features += [
            _feature(rng, field, round(rng.random(), 4)) for _ in range(rng.randint(0, 3 if field == "853" else 1))
        ]
    return f"{sample_id},{click},{conversion},{key},{len(features)},{chr(1).join(features)}\n"


def write_raw(folder, rows, rows_per_user, seed=0):
    """Writes the two files; returns their paths."""
    rng = random.Random(seed)
    skeleton = os.path.join(folder, "sample_skeleton_train.csv")
    common = os.path.join(folder, "common_features_train.csv")
    users = max(1, rows // rows_per_user)
    with open(common, "w") as f:
        for user in range(users):
            f.write(_common_line(rng, f"{user:032x}"))
    with open(skeleton, "w") as f:
        for sample_id in range(1, rows + 1):
            f.write(_skeleton_line(rng, sample_id, f"{(sample_id - 1) * users // rows:032x}"))
    return skeleton, common


def _size(path):
    return (
        sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path))
        if os.path.isdir(path)
        else os.path.getsize(path)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rows_per_user", type=int, default=58)
    parser.add_argument("--single_value", default="list")
    parser.add_argument("--max_list_length", type=int, default=64)
    parser.add_argument("--work_dir", default=None)
    parser.add_argument("--reuse", action="store_true", help="Convert the raw files already in --work_dir.")
    parser.add_argument("--runner", default="DirectRunner", help="DirectRunner (all cores) or InProcess.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="aliccp-raw-")
    os.makedirs(work_dir, exist_ok=True)
    start = time.monotonic()
    skeleton, common = (
        os.path.join(work_dir, name) for name in ("sample_skeleton_train.csv", "common_features_train.csv")
    )
    if not (args.reuse and os.path.exists(skeleton) and os.path.exists(common)):
        skeleton, common = write_raw(work_dir, args.rows, args.rows_per_user)
    generated = time.monotonic() - start
    out = os.path.join(work_dir, f"out-{args.runner}-{args.single_value}-{args.max_list_length}")
    shutil.rmtree(out, ignore_errors=True)
    report = cli.main(
        [
            "aliccp",
            f"--skeleton={skeleton}",
            f"--common={common}",
            f"--out={out}",
            f"--single_value={args.single_value}",
            f"--max_list_length={args.max_list_length}",
            f"--runner={args.runner}",
            "--quiet",
        ]
    )
    result = {
        "rows": report["rows_read"],
        "rows_written": report["rows_written"],
        "dropped_by_reason": report["dropped_by_reason"],
        "rows_per_second": report["rows_per_second"],
        "seconds": report["seconds"],
        "skeleton_mb": round(_size(skeleton) / 2**20, 1),
        "common_mb": round(_size(common) / 2**20, 1),
        "common_rows": report["counts"]["common_feature_rows"],
        "output_mb": round(_size(out) / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "worker_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "runner": args.runner,
        "single_value": args.single_value,
        "max_list_length": args.max_list_length,
        "generation_seconds": round(generated, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:20s} {value}")


if __name__ == "__main__":
    main()
