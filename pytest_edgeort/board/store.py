"""The worker's model cache: a private workdir, files trusted only by their sha256, atomic uploads,
least-recently-used eviction above a size cap."""

import hashlib
import os
import shlex
import shutil
import stat
import time

from .wire import Kind, RequestError, one_line


class EnvironmentProblem(Exception):
    """The worker cannot run here (missing module, unsafe workdir): one line for the host."""


def private_dir(path):
    """Create ``path`` (mode 0700) if needed; EnvironmentProblem unless it is a directory of this user
    that neither group nor others can write (files in it are trusted only by hash, but a directory
    others can write lets them swap a file between the check and its use), and not a symbolic link
    (a link in a shared folder can be pointed elsewhere between two checks)."""
    try:
        if not os.path.lexists(path):
            os.makedirs(path, 0o700, exist_ok=True)  # another worker may create it after the check
        info = os.lstat(path)
    except OSError as exc:
        raise EnvironmentProblem("cannot create the workdir %s: %s" % (path, one_line(exc))) from None
    if stat.S_ISLNK(info.st_mode):
        raise EnvironmentProblem(
            "workdir %s is a symbolic link (to %s); refusing to use it, since a link can be pointed elsewhere "
            "while a run uses it: set workdir to the real folder" % (path, os.readlink(path))
        )
    if not stat.S_ISDIR(info.st_mode):
        raise EnvironmentProblem("workdir %s is not a directory; choose another workdir" % path)
    if info.st_uid != os.getuid():
        raise EnvironmentProblem(
            "workdir %s belongs to uid %d, not to this user (uid %d); refusing to use it: "
            "choose another workdir" % (path, info.st_uid, os.getuid())
        )
    if info.st_mode & 0o022:
        raise EnvironmentProblem(
            "workdir %s is writable by group or others (mode %o); refusing to use it: "
            "chmod 700 %s" % (path, info.st_mode & 0o777, shlex.quote(path))
        )


DEFAULT_CACHE_MAX_BYTES = 4 * 1024**3


class NotRegular(OSError):
    """A cache entry that is not a regular file (a FIFO, a device, a link): never read from it."""


def file_sha256(path):
    """The sha256 of a regular file, opened without following a link or blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular("%s is not a regular file" % path)
        digest = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_regular(path):
    """True for a regular file (not a link); anything else at ``path`` (a FIFO, a link to /dev/zero)
    is removed so that the host uploads the file again; False when nothing is there."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    if stat.S_ISREG(mode):
        return True
    _remove_entry(path)
    return False


def _check_digest(value, what):
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise RequestError(Kind.BAD_REQUEST, "%s %r is not a lowercase hex sha256" % (what, value))


def remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _remove_entry(path):
    """Remove a file, link, FIFO or directory tree (never following a link)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        remove_quietly(path)


def remove_stale_temp_files(workdir):
    """Delete ``*.<pid>.tmp`` files anywhere under ``workdir`` whose writer process is gone (it died
    mid-upload: a model, a bundle file, the worker itself)."""
    for folder, _, names in os.walk(workdir):  # (does not follow links)
        for name in names:
            parts = name.rsplit(".", 2)
            if len(parts) == 3 and parts[2] == "tmp" and parts[1].isdigit():
                try:
                    os.kill(int(parts[1]), 0)
                except ProcessLookupError:
                    remove_quietly(os.path.join(folder, name))
                except OSError:
                    pass  # alive (another user's process, EPERM): not ours to judge


class ModelStore:
    """``<workdir>/models``: models as ``<sha256>.onnx``, models with external data as bundles
    (``<bundle id>/<relative path>``); a file is used only once its bytes hash right."""

    def __init__(self, workdir, max_bytes=DEFAULT_CACHE_MAX_BYTES):
        self.model_dir = os.path.join(workdir, "models")
        self.max_bytes = max_bytes
        self.cache_dirs = [self.model_dir]  # every folder the size cap covers (the EP-context cache's too)
        private_dir(workdir)
        private_dir(self.model_dir)
        remove_stale_temp_files(workdir)
        self.verified = {}  # path -> (inode, size, mtime) of the file whose hash was checked

    def model_path(self, sha256):
        _check_digest(sha256, "model sha256")
        return os.path.join(self.model_dir, sha256 + ".onnx")

    def bundle_path(self, bundle, location):
        """Where file ``location`` of the model bundle ``bundle`` (a model with external data, whose
        files keep their relative paths next to each other) lives in the cache."""
        _check_digest(bundle, "bundle id")
        parts = location.replace("\\", "/").split("/")
        if not location or location.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in location:
            raise RequestError(Kind.BAD_REQUEST, "bundle file location %r is not a plain relative path" % location)
        return os.path.join(self.model_dir, bundle, *parts)

    def has_model(self, sha256):
        return _is_regular(self.model_path(sha256))

    def has_file(self, bundle, location):
        return _is_regular(self.bundle_path(bundle, location))

    def put_model(self, sha256, data):
        path = self.model_path(sha256)
        self._store(path, sha256, data, "model %s" % sha256[:12])
        self.evict(keep=path)

    def put_file(self, bundle, location, sha256, data):
        path = self.bundle_path(bundle, location)
        try:
            private_dir(os.path.dirname(path))
        except EnvironmentProblem as exc:
            raise RequestError(Kind.PUT_MODEL, str(exc)) from None
        self._store(path, sha256, data, "file %r of bundle %s" % (location, bundle[:12]))
        self.evict(keep=os.path.join(self.model_dir, bundle))

    def _entries(self):
        """``(last use, bytes, path)`` of every cache entry: a model file or a whole bundle folder."""
        entries = []
        for path in (os.path.join(folder, name) for folder in self.cache_dirs for name in os.listdir(folder)):
            try:
                info = os.lstat(path)
                if stat.S_ISDIR(info.st_mode):
                    infos = [os.lstat(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names]
                    used, size = max([info.st_atime] + [i.st_atime for i in infos]), sum(i.st_size for i in infos)
                else:
                    used, size = info.st_atime, info.st_size
            except OSError:
                continue  # removed meanwhile (another worker evicted it)
            entries.append((used, size, path))
        return entries

    def evict(self, keep):
        """Remove least recently used entries until the cache is within ``max_bytes`` (``keep``, the
        entry just stored, stays even when it alone is larger). Files of a live session were read
        when the session was created, so removing them cannot disturb it."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            if path != keep:
                _remove_entry(path)
                self.verified = {p: v for p, v in self.verified.items() if not p.startswith(path)}
                total -= size

    def _store(self, path, sha256, data, what):
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise RequestError(Kind.BAD_REQUEST, "%s: bytes hash to %s, expected %s" % (what, digest, sha256))
        tmp = "%s.%d.tmp" % (path, os.getpid())
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:  # disk full, quota: leave nothing behind
            remove_quietly(tmp)
            raise RequestError(
                Kind.PUT_MODEL,
                "cannot store %s in %s: %s" % (what, os.path.dirname(path), exc.strerror or one_line(exc)),
            ) from None

    def _verified(self, path, sha256, what):
        """``path`` once its bytes hash to ``sha256`` (a file that does not is deleted: the host
        uploads it again). Checked once per file version and worker process."""
        if not _is_regular(path):
            raise RequestError(Kind.MISSING_MODEL, "%s is not in the worker cache" % what)
        info = os.lstat(path)
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
        if self.verified.get(path) != version:
            try:
                digest = file_sha256(path)
            except OSError:  # swapped for a FIFO or a link since the check above
                _remove_entry(path)
                raise RequestError(Kind.MISSING_MODEL, "%s is not a regular file; it was deleted" % path) from None
            if digest != sha256:
                os.remove(path)
                raise RequestError(Kind.MISSING_MODEL, "cached %s hashed to %s; it was deleted" % (path, digest))
            self.verified[path] = version
        os.utime(path, (time.time(), info.st_mtime), follow_symlinks=False)  # last use, for eviction (mtime kept)
        return path

    def verified_model(self, sha256, bundle=None, files=()):
        """The path of a cached model whose every file is verified: ``sha256``.onnx, or the first of
        ``files`` ([location, sha256] ...) of a bundle (the model and its external data)."""
        if not bundle:
            return self._verified(self.model_path(sha256), sha256, "model %s" % sha256[:12])
        paths = [
            self._verified(self.bundle_path(bundle, location), sha, "file %r of model %s" % (location, sha256[:12]))
            for location, sha in files
        ]
        return paths[0]
