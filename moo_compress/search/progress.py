"""How a search tells what it is doing: stdlib :mod:`logging` for messages, a callback for per-plan lines.

Messages (stage summaries, notes, warnings) go to the ``moo_compress`` logger, which is silent until a
handler is attached: the command line attaches :func:`console_logging`, and every run keeps its own
``run.log`` (:class:`RunLog`). Per-plan progress is a :class:`ProgressEvent` handed to a callback: the
command line prints it (:func:`print_progress`), a notebook shows a bar (:class:`ProgressBar`), the
Python API calls nothing unless asked.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moo_compress.search.evaluation_record import EvaluationRecord

__all__ = ["ProgressEvent", "ProgressCallback", "Progress", "print_progress", "ProgressBar", "progress_bar",
           "console_logging", "run_log", "RunLog", "callable_logging", "format_duration", "RUN_LOG"]

logger = logging.getLogger("moo_compress")
#: Per-plan lines are also logged here at DEBUG level, so that ``run.log`` keeps them.
progress_logger = logging.getLogger("moo_compress.search.progress")
#: The run folder's log file.
RUN_LOG = "run.log"


def format_duration(seconds: float) -> str:
    """``1h05m`` or ``3m07s``."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


@dataclass(frozen=True)
class ProgressEvent:
    """One plan's evaluation finished (or came from the cache).

    Attributes:
        stage: ``reference``, ``gen 3/12``, ``selection``, ``report``, ``held out``.
        done: Evaluations of the stage finished so far.
        total: Evaluations of the stage (an upper bound when ``bound``: racing stops some early).
        bound: Whether ``total`` is an upper bound.
        label: The plan's label.
        window: The images ``(start, stop)`` of the evaluation, if a window of the search split.
        status: ``cached``, ``ok`` or ``failed``.
        seconds: The evaluation's time.
        elapsed: Seconds since the run started.
        eta: Estimated seconds left of the whole run (selection and report included); NaN until known.
    """

    stage: str
    done: int
    total: int
    bound: bool
    label: str
    window: tuple[int, int] | None
    status: str
    seconds: float
    elapsed: float
    eta: float

    def line(self) -> str:
        """The line the command line prints."""
        where = f" images {self.window[0]}-{self.window[1]}" if self.window else ""
        eta = "?" if math.isnan(self.eta) else format_duration(self.eta)
        return (f"  {self.stage} {self.done}/{'<=' if self.bound else ''}{self.total} {self.label}{where}: "
                f"{self.status}, {self.seconds:.1f}s | {format_duration(self.elapsed)} elapsed, ETA {eta}")


ProgressCallback = Callable[[ProgressEvent], None]


def print_progress(event: ProgressEvent) -> None:
    """Prints the event's line at once (also when the output goes to a file or pipe)."""
    print(event.line(), flush=True)


def progress_bar(total: int, description: str, *, leave: bool = False) -> Any:
    """A tqdm bar: a notebook widget where Jupyter widgets are installed, else a text bar (no warning either way)."""
    try:
        import ipywidgets  # noqa: F401 - tqdm's notebook bar needs it, and warns without it
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=description, leave=leave)


class ProgressBar:
    """A tqdm progress bar per stage, for notebooks (``progress=ProgressBar()``)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._stage = ""

    def __call__(self, event: ProgressEvent) -> None:
        if self._bar is None or event.stage != self._stage or event.done == 1:
            if self._bar is not None:
                self._bar.close()
            self._bar, self._stage = progress_bar(event.total, event.stage), event.stage
        self._bar.update(event.done - self._bar.n)
        self._bar.set_postfix_str(f"{event.label}: {event.status}")


class Progress:
    """Per-plan progress with an ETA that includes selection and report.

    Time per evaluation is modelled as compression time plus seconds per image, both measured on the
    evaluations computed so far (cache hits are free), and the remaining work is counted in images.

    Args:
        callback: Called with each :class:`ProgressEvent` (None: only ``run.log`` sees them).
        started: ``time.perf_counter()`` when the run started.
        workers: Evaluations that run at once.
    """

    def __init__(self, callback: ProgressCallback | None, started: float, workers: int) -> None:
        self.callback = callback
        self.started = started
        self.workers = workers
        self.compress = 0.0
        self.computed = 0
        self.images = 0
        self.seconds = 0.0
        self.stage = ""
        self.bound = False
        self.done = 0
        self.total = 0
        self.plan: list[tuple[int, int]] = []  # (evaluations, images each) still to come after this stage

    def start(self, stage: str, total: int, later: list[tuple[int, int]], *, bound: bool = False) -> None:
        """A new stage of ``total`` evaluations (at most ``total`` when ``bound``: racing stops some early)."""
        self.stage, self.done, self.total, self.plan, self.bound = stage, 0, total, later, bound

    def estimate(self, evaluations: int, images: int) -> float:
        """Seconds (one worker) for ``evaluations`` computed evaluations of ``images`` images each."""
        if not self.computed:
            return math.nan
        return evaluations * (self.compress / self.computed + images * self.seconds / max(1, self.images))

    def remaining(self, work: list[tuple[int, int]]) -> float:
        """Seconds (all workers) for ``work``: (evaluations, images each) pairs; NaN until known."""
        return sum(self.estimate(n, i) for n, i in work) / self.workers

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def on_record(self, record: EvaluationRecord) -> None:
        """Counts an evaluation record of the current stage and reports it."""
        images = record.n_clean + record.n_corrupted
        self.done += 1
        if not record.cache_hit and record.ok and not record.duplicate_of:
            self.computed += 1
            self.compress += record.compress_seconds
            self.seconds += max(0.0, record.seconds - record.compress_seconds)
            self.images += images
        left = (max(0, self.total - self.done) // (2 if self.bound else 1), images)
        event = ProgressEvent(stage=self.stage, done=self.done, total=self.total, bound=self.bound,
                              label=record.label, window=record.window,
                              status="cached" if record.cache_hit else record.status,
                              seconds=record.seconds, elapsed=self.elapsed(),
                              eta=self.remaining([left, *self.plan]))
        progress_logger.debug(event.line())
        if self.callback is not None:
            self.callback(event)


class _ConsoleFormatter(logging.Formatter):
    """The message alone; warnings prefixed with ``warning:``."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return f"warning: {message}" if record.levelno >= logging.WARNING else message


class _Forward(logging.Handler):
    def __init__(self, write: Callable[[str], None], formatter: logging.Formatter) -> None:
        super().__init__(logging.INFO)
        self.write = write
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.write(self.format(record))


@contextlib.contextmanager
def _attached(handler: logging.Handler, level: int) -> Iterator[None]:
    previous = logger.level
    if previous == logging.NOTSET or previous > level:
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous)


@contextlib.contextmanager
def callable_logging(write: Callable[[str], None]) -> Iterator[None]:
    """Sends the package's messages (INFO and up) to ``write`` as the command line words them."""
    with _attached(_Forward(write, _ConsoleFormatter()), logging.INFO):
        yield


@contextlib.contextmanager
def console_logging() -> Iterator[None]:
    """Prints the package's messages (INFO and up) to standard output, as the command line shows them."""
    with callable_logging(lambda line: print(line, file=sys.stdout, flush=True)):
        yield


class RunLog(logging.Handler):
    """Every message of a run, per-plan lines included, for ``<run folder>/run.log``: held until
    :meth:`open` names the folder (the run folder is known only once the settings are resolved), then
    appended to the file as they come."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        self._held: list[str] = []
        self._file: Any = None

    def open(self, folder: Path) -> None:
        """Starts writing to ``folder/run.log`` (appending: a resumed run continues its log)."""
        self._file = open(Path(folder) / RUN_LOG, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        for line in self._held:
            self._file.write(line + "\n")
        self._held.clear()
        self._file.flush()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if self._file is None:
            self._held.append(line)
        else:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


@contextlib.contextmanager
def run_log() -> Iterator[RunLog]:
    """Collects the run's messages into a :class:`RunLog` (call its ``open`` with the run folder)."""
    handler = RunLog()
    with _attached(handler, logging.DEBUG):
        yield handler
