"""How every command line of the package starts and fails.

* `quiet_tensorflow_import()`: TensorFlow's C++ start-up lines (CUDA probing
  on a machine without a GPU, CPU feature notes) are hidden; they are printed
  before Python logging exists and say nothing about the run.
* `run(main)`: `absl.app.run` where a user error (a bad flag or flag value, a
  `UsageError`, a `DataError` naming a file and record) is one line on stderr
  and exit status 2, instead of a traceback or the whole flag list. Bugs keep
  their traceback.

`TFCVR_VERBOSE=1` restores both, TensorFlow's start-up lines and the full
traceback of a user error before its line, for bug reports (`--verbosity=1`
the traceback).
"""

import contextlib
import os
import sys
import traceback
from collections.abc import Callable

from absl import app, flags

USAGE_EXIT_STATUS = 2


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

    return (app.UsageError, DataError, flags.Error)


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


def fail(error: BaseException | str, usage: bool | None = None) -> None:
    """Prints `error` as one line on stderr and exits with status 2 (raises `UserExit`).

    A usage error (a message string, a `UsageError` or a flag error, unless
    `usage` says otherwise) points to --help.
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # `python -m trainer.task` -> "trainer.task"
    program = spec.name.removesuffix(".__main__") if spec else os.path.basename(sys.argv[0] if sys.argv else "tfcvr")
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
    return verbose() or (flags.FLAGS.is_parsed() and flags.FLAGS["verbosity"].value >= 1)


def run(main: Callable[[list[str]], int | None], argv: list[str] | None = None, also: tuple[type, ...] = ()) -> None:
    """`absl.app.run(main)` with the package's error reporting (module docstring).

    `also`: further exception types this command reports as a user's problem (e.g. a diverged training run).
    """

    def guarded(args: list[str]) -> int | None:
        try:
            return main(args)
        except (*user_errors(), *also) as error:
            if _wants_traceback():
                traceback.print_exc()
            fail(error)

    app.run(guarded, argv=argv, flags_parser=_parse_flags)
