"""The data the emulator reads at run time, wherever it is installed.

`contracts/` and `scenarios/` live at the top of the repository, where people read them;
`emulator/_data/` links to both, so a wheel or sdist carries them inside the package and a clone
(editable install) reads the very same files through the links. Everything is found through
`importlib.resources`, never through the working directory or paths relative to the source tree.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def data(*parts: str) -> Path:
    """A file or folder of the bundled data: `data("contracts", "schemas")`, `data("scenarios")`."""
    # The package is installed as files (setuptools' wheels are not zip-safe here), so the
    # Traversable is a real path that Path-based readers and the scenario watcher can use.
    return Path(str(resources.files("emulator").joinpath("_data", *parts)))


CONTRACTS = data("contracts")
SCENARIOS = data("scenarios")  # the scenario library
