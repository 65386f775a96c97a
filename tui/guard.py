"""Last-resort error handling for the dashboard: what no file content, value or key may do is end the app.

Errors that still escape (a bug) go to one place: the full traceback is appended to ``logs/dashboard-errors.log``
in the workspace (else a file in the temp folder) and the user gets one line: a notification while the app runs
(:meth:`tui.app.NcanvasApp.report_error`), or, when the app itself had to stop, one line on stderr and a
non-zero exit status. No Textual import here: the CLI and tests use it without an app.
"""

from __future__ import annotations

import functools
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ERROR_LOG = "dashboard-errors.log"
_KEEP_BYTES = 1 << 20  # the log is cut back to its last MiB: bounded however often something fails


def one_line(error: BaseException) -> str:
    """``TypeError: first line of the message``."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def write_traceback(log_dir: Path | None, error: BaseException, what: str) -> Path | None:
    """Append ``error``'s traceback to ``log_dir/dashboard-errors.log`` (else the temp folder). Returns the file,
    or None when neither could be written."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    entry = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {what}\n{text}\n"
    for folder in (log_dir, Path(tempfile.gettempdir())):
        if folder is None:
            continue
        path = folder / ERROR_LOG
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(entry)
            if path.stat().st_size > 2 * _KEEP_BYTES:
                data = path.read_bytes()[-_KEEP_BYTES:]
                path.write_bytes(data[data.find(b"\n--- ") + 1:] if b"\n--- " in data else data)
            return path
        except OSError:
            continue
    return None


def safe_render(render: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Decorate a widget's ``render``: an exception becomes one red line in the widget and a report to the app
    (``report_error``), instead of the end of the app."""
    from rich.text import Text

    @functools.wraps(render)
    def guarded(self: Any) -> Any:
        try:
            return render(self)
        except Exception as e:  # noqa: BLE001 - the last resort: draw the error, keep the app
            report = getattr(self.app, "report_error", None)
            if report is not None:
                report(e, f"drawing {type(self).__name__}")
            return Text(f"(cannot draw: {one_line(e)})", style="red")

    return guarded
