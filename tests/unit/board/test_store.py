"""The board's model cache: entries that are not regular files are replaced, never read; interrupted
uploads anywhere in the workdir are swept; least recently used entries go above the size cap."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys

import pytest

from pytest_edgeort.board.epcache import ContextCache
from pytest_edgeort.board.store import EnvironmentProblem, ModelStore, private_dir
from pytest_edgeort.board.wire import Kind, RequestError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plant(kind: str, path: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink("/dev/zero", path)


@pytest.mark.timeout(30)  # reading a FIFO would block for ever
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_an_entry_that_is_not_a_regular_file_is_removed_and_uploaded_again(tmp_path, kind):
    store = ModelStore(str(tmp_path))
    data = b"model bytes"
    path = store.model_path(_sha(data))
    _plant(kind, path)
    with pytest.raises(RequestError) as info:
        store.verified_model(_sha(data))
    assert info.value.kind == Kind.MISSING_MODEL and not os.path.lexists(path)
    _plant(kind, path)
    assert not store.has_model(_sha(data)) and not os.path.lexists(path)  # the host uploads it again
    store.put_model(_sha(data), data)
    assert store.verified_model(_sha(data)) == path


def test_interrupted_uploads_anywhere_in_the_workdir_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "models").mkdir()
    stale = [tmp_path / f"worker-abc.pyz.{pid}.tmp", tmp_path / "models" / f"x.onnx.{pid}.tmp"]
    live = tmp_path / f"worker-abc.pyz.{os.getpid()}.tmp"
    for path in [*stale, live]:
        path.write_bytes(b"partial")
    ModelStore(str(tmp_path))
    assert [p.exists() for p in stale] == [False, False] and live.exists()


def test_least_recently_used_models_are_evicted_above_the_cap(tmp_path):
    store = ModelStore(str(tmp_path), max_bytes=2500)
    models = [bytes([n]) * 1000 for n in range(4)]
    store.put_model(_sha(models[0]), models[0])
    store.put_model(_sha(models[1]), models[1])
    for n, when in ((0, 2000), (1, 1000)):  # model 0 was used after model 1
        os.utime(store.model_path(_sha(models[n])), (when, when))
    store.put_model(_sha(models[2]), models[2])  # 3000 bytes > 2500: the least recently used (1) goes
    assert [store.has_model(_sha(m)) for m in models] == [True, False, True, False]
    store.verified_model(_sha(models[0]))  # a use marks it recent
    store.put_model(_sha(models[3]), models[3])
    assert [store.has_model(_sha(m)) for m in models] == [True, False, False, True]


def test_the_cap_covers_the_ep_context_cache_too(tmp_path):
    store = ModelStore(str(tmp_path), max_bytes=2500)
    contexts = ContextCache(str(tmp_path))
    store.cache_dirs.append(contexts.dir)
    old = os.path.join(contexts.dir, "old.onnx")
    with open(old, "wb") as f:
        f.write(b"c" * 2000)
    os.utime(old, (1000, 1000))
    store.put_model(_sha(b"m" * 1000), b"m" * 1000)  # 3000 bytes > 2500: the older context model goes
    assert not os.path.exists(old) and store.has_model(_sha(b"m" * 1000))


def test_an_entry_larger_than_the_cap_alone_is_kept(tmp_path):
    store = ModelStore(str(tmp_path), max_bytes=10)
    store.put_model(_sha(b"x" * 100), b"x" * 100)
    assert store.has_model(_sha(b"x" * 100))


def test_a_workdir_that_is_a_symbolic_link_is_refused_with_one_line(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "work"
    link.symlink_to(real)
    with pytest.raises(EnvironmentProblem) as info:
        ModelStore(str(link))
    assert str(info.value) == (
        f"workdir {link} is a symbolic link (to {real}); refusing to use it, since a link can be pointed "
        "elsewhere while a run uses it: set workdir to the real folder"
    )
    assert not (real / "models").exists()


def _make_workdirs(root, count, start):
    start.wait()
    for index in range(count):
        private_dir(os.path.join(root, str(index), ".cache", "edgeort"))


def test_workers_creating_the_same_workdir_at_once_all_get_it(tmp_path):
    """Two xdist workers start a `local` worker each on the same workdir: whichever creates it second
    must use it, not fail with 'File exists' (seen in CI as skipped tests)."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(4)
    workers = [context.Process(target=_make_workdirs, args=(str(tmp_path), 300, start)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert len(list(tmp_path.glob("*/.cache/edgeort"))) == 300
