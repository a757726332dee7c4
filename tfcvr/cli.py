"""How every command line of the package starts and fails.

* `quiet_tensorflow_import()`: TensorFlow's C++ start-up lines (CUDA probing
  on a machine without a GPU, CPU feature notes) are hidden; they are printed
  before Python logging exists and say nothing about the run.
* `run(main)`: `absl.app.run` where a user error (a bad flag or flag value, a
  `UsageError`, a `DataError` naming a file and record) is one line on stderr
  and exit status 2, instead of a traceback or the whole flag list. Bugs keep
  their traceback.
* `--help` (`-h`, `--helpshort`) prints the command's usage (its module
  docstring) and its own flags, grouped (`set_flag_group`), with defaults
  and choices, and exits 0; absl's `--helpfull` still lists every flag,
  TensorFlow's and absl's included.
* TensorFlow's Python INFO lines are hidden for the run (its warnings and
  errors show); the command's own progress lines stay.

`TFCVR_VERBOSE=1` restores both, TensorFlow's start-up lines and the full
traceback of a user error before its line, for bug reports (`--verbosity=1`
the traceback).
"""

import contextlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags
from absl import logging as absl_logging

USAGE_EXIT_STATUS = 2
HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "-helpshort", "-?")
# The packages whose flags are a command's own (absl and TensorFlow define flags of their own too).
OWN_PACKAGES = ("tfcvr", "trainer", "serving", "benchmarks", "__main__")
# flag name -> the title of the group `--help` lists it under (flags without one: "Options").
_FLAG_GROUPS: dict[str, str] = {}


def set_flag_group(names, title: str) -> None:
    """Lists the flags `names` under `title` in `--help`."""
    for name in names:
        _FLAG_GROUPS[name] = title


def verbose() -> bool:
    """Whether the user asked for everything (TFCVR_VERBOSE=1)."""
    return os.environ.get("TFCVR_VERBOSE", "") not in ("", "0", "false", "False")


def quiet_tensorflow_import() -> None:
    """Imports TensorFlow with its C++ start-up output hidden (unless verbose, or already imported)."""
    if "tensorflow" in sys.modules or verbose():
        return
    # INFO and WARNING of the C++ runtime stay hidden for the whole run; its errors (gRPC, collectives,
    # allocation) still show. Listing the devices here runs the GPU probe, whose "failed call to cuInit" error
    # on a machine without a GPU is start-up noise, while stderr is silenced.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_to_devnull():
        import tensorflow

        tensorflow.config.list_physical_devices()


@contextlib.contextmanager
def _stderr_to_devnull():
    """File descriptor 2 to /dev/null: the C++ libraries write there directly, past Python's sys.stderr."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def user_errors() -> tuple:
    """The exception types that are the user's input, not a bug: reported in one line."""
    from tfcvr.data.errors import DataError
    from tfcvr.optional import MissingDependencyError

    return (app.UsageError, DataError, flags.Error, MissingDependencyError)


def one_line(error: BaseException | str) -> str:
    """The error's message on one line (TensorFlow's multi-line messages joined)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


class UserExit(SystemExit):
    """Exit status 2 after a user error was printed; `str()` is the message (for callers and tests in-process)."""

    def __init__(self, message: str):
        super().__init__(USAGE_EXIT_STATUS)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _program() -> str:
    """The running command's name: `python -m trainer.task` -> "trainer.task" (else the script's file name)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name.removesuffix(".__main__") if spec else os.path.basename(sys.argv[0] if sys.argv else "tfcvr")


def fail(error: BaseException | str, usage: bool | None = None) -> NoReturn:
    """Prints `error` as one line on stderr and exits with status 2 (raises `UserExit`).

    A usage error (a message string, a `UsageError` or a flag error, unless
    `usage` says otherwise) points to --help.
    """
    program = _program()
    if usage is None:
        usage = isinstance(error, (str, app.UsageError, flags.Error))
    hint = " (see --help)" if usage else ""
    message = one_line(error)
    print(f"{program}: error: {message}{hint}", file=sys.stderr, flush=True)
    raise UserExit(message)


def _parse_flags(argv: list) -> list:
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        if verbose():
            traceback.print_exc()
        fail(error)


def _wants_traceback() -> bool:
    return verbose() or (flags.FLAGS.is_parsed() and (flags.FLAGS["verbosity"].value or 0) >= 1)


def command_help(flag_values: flags.FlagValues = flags.FLAGS) -> str:
    """The command's usage (its main module's docstring) and its own flags, grouped, with defaults and choices."""
    main = sys.modules.get("__main__")
    program = _program()
    lines = [(main.__doc__ or f"python -m {program} [flags]").strip(), ""]
    groups: dict[str, dict[str, flags.Flag]] = {}
    for module, module_flags in flag_values.flags_by_module_dict().items():
        # absl names the main module by its path (sys.argv[0]); the others by their dotted name.
        if module.split(".")[0] not in OWN_PACKAGES and module != (sys.argv[0] if sys.argv else None):
            continue
        for flag in module_flags:
            groups.setdefault(_FLAG_GROUPS.get(flag.name, "Options"), {})[flag.name] = flag
    for title in sorted(groups, key=lambda t: t == "Options"):  # definition order; ungrouped flags last
        lines.append(f"{title}:")
        for flag in groups[title].values():
            lines += _flag_lines(flag)
        lines.append("")
    lines.append("--helpfull lists every flag, TensorFlow's and absl's included.")
    return "\n".join(lines)


def _flag_lines(flag) -> list[str]:
    """`--name` with its default (and choices or `required`), then its help text."""
    choices = getattr(flag.parser, "enum_values", None)
    if flag.default is None and _is_required(flag):
        default = "required"
    elif isinstance(flag.default, list):
        default = f"default: {','.join(map(str, flag.default)) or '(empty)'}"
    else:
        default = f"default: {flag.default!r}" if not isinstance(flag.default, bool) else f"default: {flag.default}"
    head = f"  --{flag.name}" + (f" ({'|'.join(choices)})" if choices else "") + f"  [{default}]"
    text = flag.help or ""
    if choices and text.startswith("<"):  # absl prefixes an enum's help with its choices, listed above already
        text = text.split(">: ", 1)[-1]
    return [head, *(f"      {line}" for line in text.splitlines())]


def _is_required(flag) -> bool:
    """Marked with `flags.mark_flag_as_required` (whose validator refuses None), not merely bounded."""
    return any("must have a value other than None" in getattr(v, "message", "") for v in flag.validators)


class _FrameworkInfoFilter(logging.Filter):
    """Drops INFO (and DEBUG) records logged from inside the given package folders."""

    def __init__(self, folders: tuple[str, ...]):
        super().__init__()
        self.folders = folders

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.pathname.startswith(self.folders)


def hide_framework_info() -> None:
    """Hides TensorFlow's and Keras' INFO lines (checkpoint sharding, SavedModel assets and fingerprints,
    signature naming): they say nothing about the run. Their warnings and errors still show, and so do the
    command's own INFO progress lines."""
    folders = tuple(
        os.path.join(location, "")
        for name in ("tensorflow", "keras")
        if (spec := importlib.util.find_spec(name)) is not None
        for location in spec.submodule_search_locations or ()
    )
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # its own handler ("INFO:tensorflow:...")
    absl_logging.get_absl_handler().addFilter(_FrameworkInfoFilter(folders))  # what it logs through absl


def _print_help_and_exit(argv: list[str]) -> None:
    """`--help` among the arguments (before any other flag parsing): the command's help on stdout, exit 0."""
    if any(arg.split("=")[0] in HELP_FLAGS for arg in argv[1:]):
        print(command_help())
        sys.exit(0)


def run(
    main: Callable[[list[str]], int | None],
    argv: list[str] | None = None,
    also: tuple[type, ...] = (),
    positional: bool = False,
) -> None:
    """`absl.app.run(main)` with the package's error reporting and `--help` (module docstring).

    `also`: further exception types this command reports as a user's problem (e.g. a diverged training run).
    `positional`: the command takes arguments besides its flags (trainer.vertex: what follows `--`); otherwise a
    stray word (`trainer.task chorus`, meant as `--model=chorus`) is refused rather than ignored.
    """
    _print_help_and_exit(sys.argv if argv is None else argv)
    if not verbose():
        hide_framework_info()

    def guarded(args: list[str]) -> int | None:
        if not positional and len(args) > 1:
            fail(f"unexpected argument(s) {args[1:]}: this command takes flags only (--name=value)")
        try:
            return main(args)
        except (*user_errors(), *also) as error:
            if _wants_traceback():
                traceback.print_exc()
            fail(error)

    app.run(guarded, argv=argv, flags_parser=_parse_flags)
