"""Build the grading core (streams/core) as C extensions with mypyc, falling back to pure Python.

Everything else about the package is declared in pyproject.toml; this file only adds the
compiled core. The Python sources stay the source of truth: mypyc compiles those very
files (type-checked by mypy, whose version pyproject's [build-system] pins), and without
the extensions the package imports the .py files and behaves the same, only slower.

GRADESTREAM_COMPILE chooses:

* ``auto`` (default): compile when a C compiler is found; on any failure (no compiler, no
  Python headers, a mypyc error) warn and install the pure-Python core (the Docker image
  built on python:3.11-slim has no compiler);
* ``1``: compile or fail the install;
* ``0``: pure Python, no compilation.

Besides the core, the replay loop (``streams/replay.py``), the due index it and the
worker share (``streams/schedule.py``) and the boundary's decode (``streams/contracts.py``) are
compiled: they are the per-event path of a replay around the core. So are the worker's
faust-free per-event modules: its grading step, state store, clock and input aligner
(``streams/app``).

Editable installs (``make install``) build the extensions in place, next to the sources
(``streams/core/*.cpython-*.so``, ``streams/replay.cpython-*.so``, ...; git-ignored). An
extension module wins over the .py file of the same name, so after editing a compiled
source re-run ``.venv/bin/pip install -e '.[dev]'`` (tests/core checks that the compiled
modules match their sources and fails if they are stale).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# The modules on the per-event path. policy.py (pydantic models, read once) and errors.py
# stay interpreted.
CORE = [
    "timefmt",
    "compiled",
    "state",
    "folding",
    "rfm",
    "tiers",
    "tier_progress",
    "lifecycle",
    "intent",
    "churn_model",
    "churn",
    "churn_due",
    "due",
    "stepping",
    "grading",
    "engine",
]
# Outside the core, the modules on a replay's per-event path (its loop, the due index,
# the boundary's decode) and on the worker's (its faust-free grading step, state store,
# clock and input aligner).
EXTRA = [
    "streams.schedule",
    "streams.replay",
    "streams.contracts",
    "streams.app.grading_step",
    "streams.app.states",
    "streams.app.clock",
    "streams.app.alignment",
]
MODULES = [f"streams.core.{m}" for m in CORE] + EXTRA
# Written next to the core's extensions: the sha256 of each source (every module of
# MODULES, by dotted name) they were compiled from.
SOURCES_FILE = "streams/core/_compiled_sources.json"
MODE = os.environ.get("GRADESTREAM_COMPILE", "auto").strip().lower()


def _say(message: str) -> None:
    print(f"gradestream setup.py: {message}", file=sys.stderr)


def _fallback(
    why: str, instead: str = "the pure-Python grading core (slower, same results)"
) -> None:
    if MODE == "1":
        raise SystemExit(f"gradestream setup.py: GRADESTREAM_COMPILE=1 but {why}")
    _say(f"WARNING: {why}; installing {instead}")


def _compiler_found() -> bool:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    words = shlex.split(cc)
    return bool(words) and shutil.which(words[0]) is not None


def _source_hashes() -> dict[str, str]:
    return {m: hashlib.sha256(_source(m).read_bytes()).hexdigest() for m in MODULES}


def _source(module: str) -> Path:
    return HERE / (module.replace(".", "/") + ".py")


def _extensions() -> list[Extension]:
    if MODE == "0":
        _say("GRADESTREAM_COMPILE=0: pure-Python grading core")
        return []
    if MODE not in ("auto", "1"):
        raise SystemExit(f"GRADESTREAM_COMPILE must be auto, 0 or 1, not {MODE!r}")
    if not _compiler_found():
        _fallback("no C compiler found")
        return []
    try:
        from mypyc.build import mypycify

        # No config file: pyproject's [tool.mypy] loads the pydantic plugin, which the
        # isolated build environment does not have; the runtime dependencies are absent
        # too (their types are Any here: the compiled code checks them at run time).
        # The project's own `mypy` run (make lint) is the strict check.
        options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent"]
        paths = [str(_source(m).relative_to(HERE)) for m in MODULES]
        exts: list[Extension] = mypycify(
            options + paths, opt_level="3", group_name="streams.core._native"
        )
    except (Exception, SystemExit) as err:  # mypyc exits on type errors
        _fallback(f"mypyc could not compile the core ({err!r})")
        return []
    for ext in exts:
        # Byte-identical floats on every platform: no fused multiply-add contraction
        # (gcc contracts a*b+c by default where the target has FMA, e.g. aarch64).
        ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]
    return exts


def _remove_stale_extensions() -> None:
    """Delete in-place extensions whose module is no longer compiled (renamed or removed
    sources): an editable install would otherwise keep importing them."""
    keep = {m.rsplit(".", 1)[-1] for m in MODULES} | {"_native__mypyc"}
    for folder in (HERE / "streams", HERE / "streams" / "core", HERE / "streams" / "app"):
        for built in folder.glob("*.so"):
            if built.name.split(".", 1)[0] not in keep:
                _say(f"removing {built.relative_to(HERE)}: its module is no longer compiled")
                built.unlink()


class OptionalBuildExt(build_ext):
    """build_ext that installs the pure-Python core when compiling fails (unless MODE 1),
    and records which sources the extensions were compiled from."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as err:
            _fallback(f"the C extensions did not build ({err!r})")
            for out in self.get_outputs():
                Path(out).unlink(missing_ok=True)
            self.extensions = []
            return
        if self.extensions:
            record = json.dumps(_source_hashes(), indent=1, sort_keys=True) + "\n"
            targets = [Path(self.build_lib) / SOURCES_FILE]
            if self.inplace:
                targets.append(HERE / SOURCES_FILE)
                _remove_stale_extensions()
            for target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(record)

    def get_outputs(self) -> list[str]:
        outs: list[str] = super().get_outputs()
        if self.extensions:
            outs.append(str(Path(self.build_lib) / SOURCES_FILE))
        return outs

    def get_output_mapping(self) -> dict[str, str]:  # editable installs
        mapping: dict[str, Any] = super().get_output_mapping()
        if self.extensions:
            mapping[str(Path(self.build_lib) / SOURCES_FILE)] = str(HERE / SOURCES_FILE)
        return mapping


class BuildPyWithSchemas(build_py):
    """build_py that also copies the repository's schemas/*.json into the package
    (streams/schemas/), so that an installed wheel validates events without the
    repository. schemas/ stays the one source, at the root where the docs name it; an
    editable install reads it there (streams.contracts.SCHEMAS_DIR)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "streams" / "schemas"
        target.mkdir(parents=True, exist_ok=True)
        for schema in sorted((HERE / "schemas").glob("*.json")):
            shutil.copyfile(schema, target / schema.name)


setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithSchemas},
)
