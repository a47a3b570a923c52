"""Finding scenarios by name in the scenarios directory, and reloading files that change while serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from emulator import catalog
from emulator.errors import LoadError

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")


def names(directory: str | Path) -> list[str]:
    """The scenario names (file stems) in `directory`, sorted; none when it does not exist."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def resolve(name_or_file: str, directory: str | Path) -> Path:
    """A path to an existing file, or the file of that name in `directory`; LoadError with a did-you-mean."""
    given = Path(name_or_file)
    if given.suffix in SUFFIXES or "/" in name_or_file:
        if given.is_file():
            return given
        raise LoadError(f"{name_or_file}: no such scenario file")
    for suffix in SUFFIXES:
        candidate = Path(directory) / f"{name_or_file}{suffix}"
        if candidate.is_file():
            return candidate
    known = names(directory)
    raise LoadError(f"no scenario named {name_or_file!r} in {directory}/.{catalog.did_you_mean(name_or_file, known)}"
                    f" Available: {', '.join(known) or 'none'}")


class Watcher:
    """Calls `changed(path)` for every scenario file under `directory` that is written while serving.

    watchfiles (already installed with uvicorn[standard]) uses the OS's file events, with no polling.
    """

    def __init__(self, directory: str | Path, changed: Callable[[Path], None]) -> None:
        self.directory = Path(directory)
        self._changed = changed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scenario-watcher", daemon=True)

    def start(self) -> None:
        if self.directory.is_dir():
            self._thread.start()

    def _run(self) -> None:
        import watchfiles

        try:
            for changes in watchfiles.watch(self.directory, stop_event=self._stop, debounce=200,
                                            raise_interrupt=False):
                for _, path in changes:
                    if path.endswith(SUFFIXES):
                        self._changed(Path(path))
        except Exception:  # a watcher that dies must not take the server with it
            log.exception("scenario file watcher stopped; edited scenarios no longer reload")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
