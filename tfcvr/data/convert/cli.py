"""`python -m tfcvr.data.convert {aliccp,aliexpress,csv} ... --out DIR`: impression logs -> TFRecord + schema.json.

Every command writes `<out>/<split>-0000i-of-0000N.tfrecord` (and `valid-*`
with --valid_fraction), `<out>/schema.json` and `<out>/<split>_report.json`
(rows read, written per split, dropped per reason, malformed lines quoted,
rows/s). Convert the test file on its own with `--split=test
--schema=<train out>/schema.json`, so it gets the training schema's bucket
sizes and model selection (on `valid`) never reads it.

Examples:
  python -m tfcvr.data.convert aliccp --skeleton sample_skeleton_train.csv \\
      --common common_features_train.csv --out data/aliccp --valid_fraction=0.1
  python -m tfcvr.data.convert aliccp --skeleton sample_skeleton_test.csv \\
      --common common_features_test.csv --out data/aliccp --split=test --schema=data/aliccp/schema.json
  python -m tfcvr.data.convert aliccp --paddlerec_text train/small.txt --out data/esmm
  python -m tfcvr.data.convert aliexpress --input AliExpress_NL/train.csv --out data/ae_nl
  python -m tfcvr.data.convert aliexpress --item nl_item_train.csv --user nl_user_train.csv --out data/ae_nl
  python -m tfcvr.data.convert csv --input logs.parquet --label_click clicked --label_conversion bought \\
      --categorical user_id,item_id --categorical_string category --numeric price --out data/mine
  python -m tfcvr.data.convert csv --preset torch-rechub-aliccp --input ali_ccp_train.csv --out data/rechub
"""

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from tfcvr import cli
from tfcvr.data import schema as schema_lib
from tfcvr.data.convert import aliccp, aliexpress, field_encoder, formats, labels, local_runner, presets, tabular
from tfcvr.data.convert.chunks import DEFAULT_CHUNK_BYTES
from tfcvr.data.convert.report import ConversionError
from tfcvr.data.convert.sink import OutputLayout
from tfcvr.data.convert.vocabulary import check_bucket_names, check_same_features
from tfcvr.data.pipeline import resolve_files

SCHEMA_FILE = "schema.json"
IN_PROCESS = "InProcess"


class _Parser(argparse.ArgumentParser):
    """argparse with the package's one-line usage errors (exit status 2), for its sub-commands too."""

    def error(self, message: str) -> NoReturn:
        cli.fail(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m tfcvr.data.convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    raw = commands.add_parser("aliccp", help="Ali-CCP: raw Tianchi files or PaddleRec's multi-hot text.")
    raw.add_argument("--skeleton", help="sample_skeleton_{train,test}.csv of the raw release.")
    raw.add_argument("--common", help="common_features_{train,test}.csv of the same split.")
    raw.add_argument("--paddlerec_text", help="PaddleRec ESMM layout: sample_idx,click,ctcvr,field:id,...")
    raw.add_argument(
        "--single_value",
        default="list",
        choices=field_encoder.SINGLE_VALUE_POLICIES,
        help="Multi-valued fields: 'list' keeps them as categorical_list features; 'last'/'first' "
        "keep one id (published converters keep the last).",
    )

    ae = commands.add_parser("aliexpress", help="AliExpress: MTReclib's processed CSV or the raw user/item files.")
    ae.add_argument("--input", help="Processed train.csv/test.csv (comma-separated list or glob).")
    ae.add_argument("--item", help="Raw {cc}_item_{split}.csv.")
    ae.add_argument("--user", help="Raw {cc}_user_{split}.csv of the same split.")

    table = commands.add_parser("csv", help="Any CSV/Parquet impression log, one column per feature.")
    table.add_argument("--input", required=True, help="CSV or .parquet files (comma-separated list or glob).")
    table.add_argument("--preset", choices=sorted(presets.PRESETS), help="Column layout of a published dataset.")
    table.add_argument("--label_click", help="Column of the 0/1 click label.")
    table.add_argument("--label_conversion", help="Column of the 0/1 conversion (click and convert) label.")
    table.add_argument("--label_funnel", help="One label column instead: 0 impression, 1 click, 2 conversion.")
    table.add_argument("--categorical", default="", help="Columns of int64 ids.")
    table.add_argument("--categorical_string", default="", help="Columns of string ids.")
    table.add_argument("--categorical_list", default="", help="Columns of int64 ids joined by --list_separator.")
    table.add_argument("--numeric", default="", help="Columns of numbers.")
    table.add_argument("--extra", default="", help="int64 columns written into the records but not as features.")
    table.add_argument("--columns", default="", help="Column names of files without a header line.")
    table.add_argument("--list_separator", default="|")
    table.add_argument("--group_key", help="Feature to group GAUC by (schema group_key).")

    for sub in (raw, ae, table):
        sub.add_argument("--out", required=True, help="Output folder (local or gs://).")
        sub.add_argument("--split", default="train", help="Name of the written split (file prefix).")
        sub.add_argument(
            "--valid_fraction",
            type=float,
            default=0.0,
            help="Share of rows drawn into a 'valid' split for model selection.",
        )
        sub.add_argument("--split_seed", type=int, default=0, help="Seed of the validation draw.")
        sub.add_argument("--num_shards", type=int, default=4, help="TFRecord files per split.")
        sub.add_argument(
            "--max_errors",
            type=int,
            default=0,
            help="Malformed lines to skip (counted) before stopping; 0 stops at the first, -1 never.",
        )
        sub.add_argument(
            "--invalid_conversion",
            default="drop",
            choices=labels.INVALID_CONVERSION_POLICIES,
            help="Rows with conversion=1 but click=0: drop (counted) or keep (counted).",
        )
        sub.add_argument(
            "--max_list_length",
            type=int,
            default=64,
            help="Ids kept per categorical_list value (the first ones; the rest are counted).",
        )
        sub.add_argument(
            "--bucket_factor", type=float, default=2.0, help="num_buckets = distinct values seen x this factor."
        )
        sub.add_argument("--num_buckets", default="", help="Per-feature bucket sizes: name=N,name=N.")
        sub.add_argument("--schema", help="Use this schema.json (e.g. the training split's) instead of measuring.")
        sub.add_argument("--quiet", action="store_true", help="No progress bar.")
        sub.add_argument(
            "--runner",
            default="DirectRunner",
            help=f"Apache Beam runner: DirectRunner (all local cores) or DataflowRunner (with --project, "
            f"--region, --temp_location and other Beam pipeline options); {IN_PROCESS} converts in this "
            "process without Beam.",
        )
        sub.add_argument(
            "--chunk_mb",
            type=float,
            default=DEFAULT_CHUNK_BYTES / 2**20,
            help="Input is cut into chunks of about this many MiB that convert in parallel.",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs a conversion; returns the report as a dict."""
    args, pipeline_args = build_parser().parse_known_args(argv)
    if args.runner.lower() == IN_PROCESS.lower():
        args.runner = IN_PROCESS
        if pipeline_args:
            cli.fail(f"Unknown flag(s) {pipeline_args}; Apache Beam pipeline options need a Beam --runner.")
    else:
        try:
            from tfcvr.data.convert import beam_runner  # Apache Beam is an extra: tfcvr[beam]
        except ImportError as e:
            cli.fail(
                f"--runner={args.runner} needs Apache Beam ({e}): pip install 'tfcvr[beam]', "
                f"or convert in this process with --runner={IN_PROCESS}."
            )
        unknown = beam_runner.unknown_options(pipeline_args)
        if unknown:
            cli.fail(f"Unknown flag(s) {unknown}: neither a converter flag nor an Apache Beam pipeline option.")
    try:
        return _convert(args, pipeline_args)
    except (ConversionError, FileNotFoundError, *cli.user_errors()) as e:
        cli.fail(f"Conversion failed: {cli.one_line(e)}", usage=False)


def _convert(args, pipeline_args: list) -> dict:
    labels.check_policy(args.invalid_conversion)
    if args.chunk_mb <= 0:
        cli.fail(f"--chunk_mb must be positive. Received: {args.chunk_mb}")
    if args.max_errors < -1:
        cli.fail(f"--max_errors must be -1 (no limit), 0 or positive. Received: {args.max_errors}")
    num_buckets = _parse_buckets(args.num_buckets)
    fmt = _format(args)  # checks which flags go together and that the input files exist
    try:
        check_bucket_names(fmt.features, num_buckets)
    except ValueError as e:
        cli.fail(str(e))
    given = _given_schema(args, fmt.features)
    layout = OutputLayout(
        args.out,
        split=args.split,
        num_shards=args.num_shards,
        valid_fraction=args.valid_fraction,
        seed=args.split_seed,
    )
    fmt.check_inputs()
    layout.check_empty()
    chunk_bytes = max(1, int(args.chunk_mb * 2**20))
    start = time.monotonic()
    if args.runner == IN_PROCESS:
        report, vocabulary = local_runner.run(fmt, layout, args.max_errors, chunk_bytes, verbose=not args.quiet)
    else:
        from tfcvr.data.convert import beam_runner

        report, vocabulary = beam_runner.run(
            fmt, layout, args.max_errors, chunk_bytes, [f"--runner={args.runner}", *pipeline_args]
        )
    report.seconds = time.monotonic() - start
    schema = given or vocabulary.schema(
        {"click": tabular.CLICK, "conversion": tabular.CONVERSION},
        bucket_factor=args.bucket_factor,
        num_buckets=num_buckets,
        group_key=fmt.group_key,
    )
    schema_path = os.path.join(args.out, SCHEMA_FILE)
    if args.schema is None or os.path.normpath(args.schema) != os.path.normpath(schema_path):
        schema_lib.save_schema(schema, schema_path)
    report.vocabulary = {
        "distinct_values": vocabulary.distinct(),
        "longest_list": vocabulary.longest(),
        "numeric": vocabulary.numeric(),
    }
    report.save(os.path.join(args.out, f"{args.split}_report.json"))
    print(report.summary(), file=sys.stderr)
    print(f"Wrote {args.out} ({', '.join(sorted(report.written))} splits) and {schema_path}", file=sys.stderr)
    return report.to_dict()


def _format(args) -> formats.ImpressionFormat:
    """The `ImpressionFormat` of the chosen command and flags."""
    policies = {"invalid_conversion": args.invalid_conversion, "max_list_length": args.max_list_length}
    if args.command == "aliccp":
        raw = args.skeleton is not None or args.common is not None
        if raw == (args.paddlerec_text is not None) or (raw and not (args.skeleton and args.common)):
            cli.fail("aliccp: give --skeleton and --common (raw release) or --paddlerec_text.")
        if raw:
            return aliccp.RawFormat(_files(args, "skeleton"), _one_file(args, "common"), args.single_value, **policies)
        return aliccp.PaddleRecFormat(_files(args, "paddlerec_text"), args.single_value, **policies)
    if args.command == "aliexpress":
        raw = args.item is not None or args.user is not None
        if raw == (args.input is not None) or (raw and not (args.item and args.user)):
            cli.fail("aliexpress: give --input (processed CSV) or --item and --user (raw release).")
        if raw:
            return aliexpress.RawFormat(_files(args, "item"), _one_file(args, "user"), **policies)
        return tabular.TableFormat(_files(args, "input"), presets.PRESETS["mtreclib-aliexpress"], **policies)
    layout = _table_layout(args)
    return tabular.TableFormat(_files(args, "input"), layout, group_key=args.group_key, **policies)


def _files(args, flag: str) -> list:
    """The files a flag names (a glob or comma-separated list), checked before any output is written."""
    pattern = getattr(args, flag)
    try:
        return resolve_files(pattern)
    except ValueError as e:
        cli.fail(f"--{flag}={pattern}: {e}")


def _one_file(args, flag: str) -> str:
    """The joined file (one file: its rows are looked up by key)."""
    matched = _files(args, flag)
    if len(matched) != 1:
        cli.fail(f"--{flag} must name one file; it matches {len(matched)}: {matched[:3]}")
    return matched[0]


def _table_layout(args) -> tabular.TableLayout:
    explicit = {
        "click": args.label_click,
        "conversion": args.label_conversion,
        "funnel_label": args.label_funnel,
        "categorical": _names(args.categorical),
        "categorical_string": _names(args.categorical_string),
        "lists": _names(args.categorical_list),
        "numeric": _names(args.numeric),
        "extra": _names(args.extra),
        "columns": _names(args.columns) or None,
    }
    given = {key: value for key, value in explicit.items() if value}
    if args.preset:
        if given:
            cli.fail(f"csv: --preset={args.preset} sets the columns; do not also give {sorted(given)}.")
        return presets.PRESETS[args.preset]
    try:
        return tabular.TableLayout(list_separator=args.list_separator, **given)
    except ValueError as e:
        cli.fail(f"csv: {e}")


def _given_schema(args, features):
    if args.schema is None:
        return None
    try:
        schema = schema_lib.load_schema(args.schema)
        check_same_features(schema, features, args.schema)
    except (ValueError, FileNotFoundError) as e:
        cli.fail(f"--schema={args.schema}: {cli.one_line(e)}")
    return schema


def _names(text: str) -> tuple:
    return tuple(name.strip() for name in text.split(",") if name.strip()) if text else ()


def _parse_buckets(text: str) -> dict:
    buckets = {}
    for item in _names(text):
        name, separator, value = item.partition("=")
        if not separator or not value.strip().isdigit() or int(value) < 1:
            cli.fail(f"--num_buckets: expected name=N with a positive N. Received: {item!r}")
        buckets[name.strip()] = int(value)
    return buckets
