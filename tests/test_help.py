"""`--help` of every command lists the command's own flags, grouped, exits 0, and its usage names only real flags."""

import functools
import json
import os
import re
import subprocess
import sys

import pytest

# End-to-end: subprocesses, clusters or training to a bar; left out of the fast tier (-m "not slow").
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABSL_COMMANDS = (
    "trainer.task",
    "trainer.benchmark",
    "trainer.evaluate",
    "trainer.compare",
    "trainer.vertex",
    "tfcvr.export.model_config",
    "tfcvr.data.simulate",
    "serving.client",
    "serving.local",
)
# Runs the command's `--help` in a fresh interpreter and reports its exit status, its output and the flags the
# command itself defined (those not defined by absl, TensorFlow or the package's shared modules beforehand).
PROBE = """
import contextlib, io, json, runpy, sys
from absl import flags
import tensorflow, tfcvr, trainer.config, serving
before = set(flags.FLAGS)
sys.argv = [{module!r}, "--help"]
out, code = io.StringIO(), None
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code
print(json.dumps({{"code": code, "help": out.getvalue(), "own": sorted(set(flags.FLAGS) - before)}}))
"""


def _help(module: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ABSL_COMMANDS)
def test_help_lists_the_commands_own_flags_grouped_and_exits_0(module):
    report = _help(module)
    text = report["help"]
    assert report["code"] in (0, None)
    assert report["own"], f"{module} defines no flags of its own"
    listed = set(re.findall(r"^  --(\w+)", text, re.MULTILINE))
    assert set(report["own"]) <= listed, f"{module} --help misses {sorted(set(report['own']) - listed)}"
    # Nothing of absl's or TensorFlow's own flags.
    assert not listed & {"verbosity", "logtostderr", "alsologtostderr", "log_dir", "flagfile", "only_check_args"}
    assert re.search(r"^[A-Z][\w ]*:$", text, re.MULTILINE), "flags are listed under group headings"
    assert "--helpfull" in text
    # The usage examples of the help text name only flags the command accepts.
    examples = _usage_examples(text, module)
    assert examples, f"{module} --help shows no `python -m {module} ...` example"
    named = {flag for example in examples for flag in re.findall(r"--(\w+)", example)}
    assert named <= set(report["own"]), f"{module}'s usage names unknown flags {sorted(named - set(report['own']))}"


def _usage_examples(text: str, module: str) -> list[str]:
    """Each `python -m <module> ...` line of the help with its more indented continuation lines; what follows
    ` -- ` goes to another command (trainer.vertex passes it to trainer.task)."""
    lines = text.splitlines()
    examples = []
    for index, line in enumerate(lines):
        if not line.strip().startswith(f"python -m {module}"):
            continue
        indent, example = len(line) - len(line.lstrip()), [line]
        for following in lines[index + 1 :]:
            if not following.strip() or len(following) - len(following.lstrip()) <= indent:
                break
            example.append(following)
        examples.append(" ".join(example).split(" -- ")[0])
    return examples


def test_help_shows_defaults_choices_and_required_flags():
    text = _help("trainer.evaluate")["help"]
    assert re.search(r"^  --export_dir  \[required\]$", text, re.MULTILINE)
    assert re.search(r"^  --invalid_conversion \(error\|drop\)  \[default: 'error'\]$", text, re.MULTILINE)
    assert re.search(r"^  --batch_size  \[default: 1024\]$", text, re.MULTILINE)


def test_converter_help_exits_0_and_lists_its_flags():
    result = subprocess.run(
        [sys.executable, "-m", "tfcvr.data.convert", "csv", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--label_click" in result.stdout and "--valid_fraction" in result.stdout


DOCUMENTED = (
    "README.md",
    "CONTRIBUTING.md",
    *(f"docs/{name}" for name in sorted(os.listdir(os.path.join(ROOT, "docs")))),
)
COMMAND = re.compile(r"python -m ((?:trainer|tfcvr|serving)[\w.]*)((?:[^\n`|;&]|\\\n)*)")


@functools.cache
def _accepted_flags(module: str, subcommand: str | None = None) -> frozenset:
    """The flags `module` (and `subcommand`, for the converters' argparse) accepts."""
    if module == "tfcvr.data.convert":
        result = subprocess.run(
            [sys.executable, "-m", module, subcommand, "--help"], capture_output=True, text=True, cwd=ROOT
        )
        return frozenset(re.findall(r"--(\w+)", result.stdout))
    return frozenset(_help(module)["own"])


def _documented_commands():
    for page in DOCUMENTED:
        path = os.path.join(ROOT, page)
        if not page.endswith(".md") or not os.path.exists(path):
            continue
        for module, rest in COMMAND.findall(open(path).read()):
            yield page, module, rest.replace("\\\n", " ")


@pytest.mark.parametrize(
    "page, module, arguments", list(_documented_commands()), ids=lambda value: str(value)[:60].replace(" ", "_")
)
def test_every_documented_command_line_names_only_flags_its_command_accepts(page, module, arguments):
    own, _, passed_on = arguments.partition(" -- ")  # trainer.vertex passes what follows `--` to trainer.task
    words = own.split()
    subcommand = words[0] if module == "tfcvr.data.convert" and words and not words[0].startswith("-") else None
    if module == "tfcvr.data.convert" and (subcommand is None or subcommand.startswith("{")):
        return  # the converter's usage line, which names no one subcommand
    checks = [(module, subcommand, own)] + ([("trainer.task", None, passed_on)] if passed_on else [])
    for command, sub, text in checks:
        accepted = _accepted_flags(command, sub)
        named = {flag for flag in re.findall(r"(?<![\w-])--(\w+)", text)}
        unknown = {
            f
            for f in named - {"help", "helpfull", "helpshort"}
            if f not in accepted and not (f.startswith("no") and f[2:] in accepted)  # absl's --noFLAG of a bool
        }
        assert not unknown, f"{page}: `python -m {command}` with unknown flag(s) {sorted(unknown)}"
