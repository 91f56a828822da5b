"""The repository folders the CLI reads data from: ``hardware_configs/`` (rig YAMLs), ``teleop/`` (teleop
profiles) and ``calibration/`` (per-rig camera calibration).

In a source checkout (and an editable install) they are the repository's own folders. A wheel cannot hold
folders beside the package, so ``setup.py`` maps copies of them to ``robot_stack/_data/<folder>``; a regular
install (``pip install .``, a built wheel) reads those. ``shipped_dir`` hides the difference.
"""

from __future__ import annotations

from pathlib import Path

from robot_stack.config import ConfigError

FOLDERS = ("hardware_configs", "teleop", "calibration")

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(folder: str) -> Path:
    """The installed copy of ``folder`` (one of ``FOLDERS``) if there is one, else the repository's."""
    if folder not in FOLDERS:
        raise ValueError(f"unknown shipped folder {folder!r}; one of {FOLDERS}")
    installed = _PACKAGE / "_data" / folder
    return installed if installed.is_dir() else _PACKAGE.parent / folder


def rig_path(name_or_path: str | Path) -> Path:
    """``sim_pusht`` -> the shipped ``hardware_configs/sim_pusht.yaml``; an existing file or anything that
    looks like a path (a slash or a YAML suffix) as given. Raises ``ConfigError`` listing the shipped rigs."""
    text = str(name_or_path)
    path = Path(text)
    if path.is_file() or "/" in text or path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"rig file not found: {path} (shipped rigs: {', '.join(shipped_rigs())})")
        return path
    shipped = shipped_dir("hardware_configs") / f"{text}.yaml"
    if not shipped.is_file():
        raise ConfigError(f"unknown rig {text!r}: not a file, and not a shipped rig ({', '.join(shipped_rigs())})")
    return shipped


def shipped_rigs() -> list[str]:
    """Names of the rigs shipped in ``hardware_configs/``."""
    return sorted(p.stem for p in shipped_dir("hardware_configs").glob("*.yaml"))
