"""The wheel must carry every subpackage and the shipped models (automatic discovery misses models/)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_for_the_wheel():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "uvaug").rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert config["package-dir"]["uvaug._models"] == "models"
    assert "*.task" in config["package-data"]["uvaug._models"]


def test_shipped_models_are_in_the_models_folder():
    from uvaug.assets import SHIPPED

    for name, spec in SHIPPED.items():
        assert (ROOT / "models" / name).stat().st_size == spec.size
