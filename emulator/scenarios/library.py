"""Finding scenarios by name (the user's scenarios directory, then the library the package carries),
and reloading files that change while serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from emulator import catalog, resources
from emulator.errors import LoadError

log = logging.getLogger(__name__)
SUFFIXES = (".yaml", ".yml")
LIBRARY = resources.SCENARIOS  # the scenarios that come with the emulator


def _folders(directory: str | Path) -> list[Path]:
    """The user's folder first (its files win), then the library the package carries."""
    folders = [Path(directory)]
    if not folders[0].is_dir() or not folders[0].samefile(LIBRARY):
        folders.append(LIBRARY)
    return folders


def names(directory: str | Path) -> list[str]:
    """The scenario names (file stems) in `directory` and in the library, sorted."""
    return sorted({p.stem for folder in _folders(directory) if folder.is_dir()
                   for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()})


def resolve(name_or_file: str, directory: str | Path) -> Path:
    """A path to an existing file, or the file of that name in `directory`, else in the library;
    LoadError with a did-you-mean."""
    given = Path(name_or_file)
    if given.suffix in SUFFIXES or "/" in name_or_file:
        if given.is_file():
            return given
        raise LoadError(f"{name_or_file}: no such scenario file")
    for folder in _folders(directory):
        for suffix in SUFFIXES:
            candidate = folder / f"{name_or_file}{suffix}"
            if candidate.is_file():
                return candidate
    known = names(directory)
    raise LoadError(f"no scenario named {name_or_file!r} in {directory}/ or the library."
                    f"{catalog.did_you_mean(name_or_file, known)} Available: {', '.join(known) or 'none'}")


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
