"""Bad input, said in one line: the error type every reader raises for a file it cannot use, and
the wrapper that turns it into ``error: <file>: <what is wrong>`` and exit status 2 in the CLIs.

Readers raise :class:`InputError` (or a subclass: ``UnsafePickleError``,
``DetectionsFormatError``, ``FeatureStoreError``, ``CorruptCheckpointError``...) naming the file
and what is wrong with it. A CLI's ``main`` wrapped with :func:`cli_main` then ends with that one
line on stderr and exit status 2; the traceback is shown only with ``--debug`` (anywhere on the
command line) or ``HYDRA_FULL_ERROR=1``, so a bug is never hidden from whoever asks for it.
``FileNotFoundError`` counts as bad input too (a path given on the command line that is not
there). Caches (tubes, box features, detection shards, tracker checkpoints) that cannot be read are
not bad input but lost work: :func:`discard_unreadable` logs the file and why, and deletes it
so that its writer builds it again; :func:`zip_problem` finds a cut ``.npz``/``.pt`` cheaply.

Nothing heavy is imported here: the CLIs that start without torch stay so.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import sys
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "InputError",
    "UNREADABLE",
    "cli_main",
    "debug_requested",
    "discard_unreadable",
    "error_line",
    "exit_on_input_error",
    "zip_problem",
]


class InputError(ValueError):
    """A file (or a value read from one) that cannot be used as it is.

    ``message`` says what is wrong and should name the file; ``path``, when given and not already
    at the start of the message, is put in front of it. A ``ValueError`` so that callers catching
    ``ValueError`` keep working.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        text = str(message)
        if self.path is not None and not text.startswith(self.path):
            text = f"{self.path}: {text}"
        super().__init__(text)


#: What the CLIs report as bad input (one line, exit 2) rather than as a crash.
INPUT_ERRORS: tuple[type[BaseException], ...] = (InputError, FileNotFoundError, IsADirectoryError)


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """True with ``--debug`` in ``argv`` or ``HYDRA_FULL_ERROR=1`` in the environment."""
    return "--debug" in (argv or ()) or os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def error_line(err: BaseException) -> str:
    """``error: <file>: <what is wrong>`` for ``err``, on one line."""
    if isinstance(err, FileNotFoundError | IsADirectoryError) and err.filename and err.strerror:
        text = f"{err.filename}: {err.strerror.lower()}"
    elif isinstance(getattr(err, "summary", None), str):  # a long report: its last line
        text = err.summary  # type: ignore[attr-defined]
    else:
        text = str(err.args[0]) if len(err.args) == 1 else str(err)  # KeyError's repr quotes
    text = " ".join(text.split())  # one line, however the message was wrapped
    if isinstance(err, FileNotFoundError | IsADirectoryError):
        # "detections file not found: <path>" -> "<path>: detections file not found"
        what, sep, tail = text.rpartition(": ")
        if sep and " " not in tail and ("/" in tail or "." in tail):
            text = f"{tail}: {what}"
    return f"error: {text}"


def _print_details(err: BaseException) -> None:
    """The lines an error carries beyond its summary (e.g. a validation report), on stderr."""
    details = getattr(err, "details", None)
    if isinstance(details, str) and details:
        print(details, file=sys.stderr)


def exit_on_input_error(err: BaseException, argv: Sequence[str] | None = None) -> None:
    """For a Hydra app's ``except`` block: bad input ends the process with :func:`error_line` on
    stderr and exit status 2 (``SystemExit``, which Hydra lets through); anything else, or
    :func:`debug_requested`, returns so that the caller re-raises with the traceback."""
    if isinstance(err, INPUT_ERRORS) and not debug_requested(argv):
        _print_details(err)
        print(error_line(err), file=sys.stderr)
        raise SystemExit(2) from None


def cli_main(main: Callable[[list[str]], Any]) -> Callable[[Sequence[str] | None], Any]:
    """Wrap a CLI ``main(argv)``: ``--debug`` is taken out of ``argv`` (it may stand anywhere)
    and bad input (:data:`INPUT_ERRORS`) returns 2 after one :func:`error_line` on stderr."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None) -> Any:
        args = list(sys.argv[1:] if argv is None else argv)
        debug = debug_requested(args)
        args = [a for a in args if a != "--debug"]
        try:
            return main(args)
        except INPUT_ERRORS as e:
            if debug:
                raise
            _print_details(e)
            print(error_line(e), file=sys.stderr)
            return 2

    return wrapped


# ------------------------------------------------------------------------------ unreadable caches
#: What reading a cut or corrupt cache file raises (numpy, zipfile, pickle, json; torch raises
#: RuntimeError, caught by the caller that loads with torch).
UNREADABLE: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    zipfile.BadZipFile,
    pickle.UnpicklingError,
)


def zip_problem(path: str | os.PathLike, full: bool = False) -> str | None:
    """Why the zip archive at ``path`` (an ``.npz``, a ``torch.save`` file) cannot be read, or
    None. Cheap by default: the central directory (at the end of the file, so a cut file has
    none) and every member's extent; ``full`` also reads every member and checks its CRC."""
    try:
        with zipfile.ZipFile(path) as z:
            size = os.path.getsize(path)
            for info in z.infolist():
                if info.header_offset + info.compress_size > size:
                    return f"member {info.filename} runs past the end of the file"
            if full:
                bad = z.testzip()
                if bad is not None:
                    return f"member {bad} is corrupt (CRC mismatch)"
    except (OSError, EOFError, zipfile.BadZipFile, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def discard_unreadable(
    path: str | os.PathLike, why: BaseException | str, what: str, log: logging.Logger
) -> None:
    """Log (warning) that the cache file ``path`` (a ``what``, e.g. "tube cache") cannot be read
    and why, and delete it, so that the caller builds it again."""
    if isinstance(why, BaseException):
        lines = str(why).strip().splitlines()
        why = f"{type(why).__name__}: {lines[0] if lines else ''}"
    log.warning("%s %s cannot be read (%s): deleting it and building it again", what, path, why)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
