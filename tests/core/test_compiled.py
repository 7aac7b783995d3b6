"""The compiled core (mypyc, setup.py) against its Python sources.

"The core" here is every module setup.py compiles: streams/core, and the replay loop, its
due index and the boundary's decode (streams/replay.py, streams/schedule.py,
streams/contracts.py), as `_compiled_sources.json` lists.

Skipped when the core runs as pure Python (installed without a C compiler, or with
GRADESTREAM_COMPILE=0): there is nothing compiled to compare then.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES, PathFinder
from pathlib import Path

import pytest

import streams.core
from streams.core import engine

CORE = Path(streams.core.__file__).parent
ROOT = CORE.parents[1]  # the directory holding the streams package
COMPILED = not engine.__file__.endswith(".py")
pytestmark = pytest.mark.skipif(not COMPILED, reason="the grading core runs as pure Python")

# The prelude of the scripts below: `use_pure_core(root)` makes `streams.core.*` and the
# other compiled modules (those `_compiled_sources.json` lists) import from their .py files
# under `root`, not from the extensions next to them.
_PURE_CORE = r"""
import importlib.machinery as _machinery, json as _json, sys as _sys
from pathlib import Path as _Path
def use_pure_core(root):
    root = _Path(root)
    compiled = set(_json.loads((root / "streams/core/_compiled_sources.json").read_text()))
    def finder(name):
        return _machinery.FileFinder(
            str(root.joinpath(*name.split(".")[:-1])),
            (_machinery.SourceFileLoader, _machinery.SOURCE_SUFFIXES),
        )
    class PureCore:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.startswith("streams.core.") or name in compiled:
                return finder(name).find_spec(name)
            return None
    _sys.meta_path.insert(0, PureCore)
"""

# Replays a simulated file and prints its outputs, dead letters, snapshots and encoded
# final states; with "pure", the core's .py files are imported instead of the extensions.
_RUN = (
    _PURE_CORE
    + r"""
import sys, tempfile
from pathlib import Path
root = Path(sys.argv[1])
if sys.argv[2] == "pure":
    use_pure_core(root)
import streams.contracts, streams.replay, streams.schedule
from streams.core import engine
from streams.core.policy import load_policy
from streams.core.state import encode
from streams.replay import Replayer, jsonl_writer
from streams.simulate import generate
want_compiled = sys.argv[2] != "pure"
for module in (engine, streams.contracts, streams.replay, streams.schedule):
    assert module.__file__.endswith(".py") != want_compiled, module.__file__
out = sys.stdout.buffer
write = jsonl_writer(out)
for policy_file, as_of in ((None, None), (sys.argv[3], 1_735_000_000)):
    policy = load_policy(Path(policy_file) if policy_file else None)
    r = Replayer(policy, write, write, partitions=3)
    for i, rec in enumerate(generate(500, 365, 11)):
        r.feed(i, rec.value)
    for g in r.finish(as_of):
        write(g)
    for cid in sorted(r.states):
        out.write(encode(r.states[cid]) + b"\n")
"""
)


def _replay(mode: str) -> bytes:
    model = Path(streams.core.__file__).parents[1] / "policies/examples/with-model.toml"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(ROOT), mode, str(model)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_the_extensions_were_built_from_these_sources() -> None:
    """An extension module wins over the .py of the same name: after an edit of a
    compiled source the extension is stale until `pip install -e .` runs again."""
    built = json.loads((CORE / "_compiled_sources.json").read_text())
    outside = {"streams.contracts", "streams.replay", "streams.schedule"}
    assert {"streams.core.engine", *outside} <= set(built)
    stale = [
        name
        for name, digest in built.items()
        if hashlib.sha256(_source(name).read_bytes()).hexdigest() != digest
    ]
    assert not stale, f"compiled core older than its sources {stale}: pip install -e '.[dev]'"


def test_each_compiled_source_resolves_to_its_extension() -> None:
    """Each module listed is found as an extension sitting next to its .py file (asked of
    the file system: mypyc's `__file__` is wrong for a module first imported by another
    compiled module, e.g. streams/core/streams/core/state.*.so)."""
    built = json.loads((CORE / "_compiled_sources.json").read_text())
    for name in built:
        source = _source(name)
        spec = PathFinder.find_spec(name, [str(source.parent)])
        assert spec is not None, name
        assert spec.origin is not None, name
        found = Path(spec.origin)
        assert found.parent == source.parent, (name, found)
        assert found.name.startswith(source.stem + "."), (name, found)
        assert found.name.endswith(tuple(EXTENSION_SUFFIXES)), (name, found)


def _source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def test_compiled_and_pure_core_give_the_same_bytes() -> None:
    compiled, pure = _replay("compiled"), _replay("pure")
    assert compiled.count(b"\n") > 5_000
    assert compiled == pure


# Runs the doctests of the core's Python sources (the extensions keep no docstrings, so
# pytest's --doctest-modules finds none in them).
_DOCTESTS = (
    _PURE_CORE
    + r"""
import doctest, importlib, sys
from pathlib import Path
use_pure_core(Path(sys.argv[1]))
failed = tried = 0
for name in sys.argv[2:]:
    module = importlib.import_module(name)
    assert module.__file__.endswith(".py"), module.__file__
    result = doctest.testmod(module)
    failed, tried = failed + result.failed, tried + result.attempted
print(tried)
sys.exit(1 if failed else 0)
"""
)


def test_doctests_of_the_compiled_modules_pass_in_their_sources() -> None:
    built = sorted(json.loads((CORE / "_compiled_sources.json").read_text()))
    done = subprocess.run(
        [sys.executable, "-c", _DOCTESTS, str(ROOT), *built],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert int(done.stdout) > 20
