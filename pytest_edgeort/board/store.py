"""The worker's model cache: a private workdir, files trusted only by their sha256, atomic uploads."""

import hashlib
import os

from .wire import Kind, RequestError, one_line


class EnvironmentProblem(Exception):
    """The worker cannot run here (missing module, unsafe workdir): one line for the host."""


def private_dir(path):
    """Create ``path`` (mode 0700) if needed; EnvironmentProblem unless it is a directory of this user
    that neither group nor others can write (files in it are trusted only by hash, but a directory
    others can write lets them swap a file between the check and its use)."""
    try:
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)
        info = os.stat(path)
    except OSError as exc:
        raise EnvironmentProblem("cannot create the workdir %s: %s" % (path, one_line(exc))) from None
    if info.st_uid != os.getuid():
        raise EnvironmentProblem(
            "workdir %s belongs to uid %d, not to this user (uid %d); refusing to use it: "
            "choose another workdir" % (path, info.st_uid, os.getuid())
        )
    if info.st_mode & 0o022:
        raise EnvironmentProblem(
            "workdir %s is writable by group or others (mode %o); refusing to use it: "
            "chmod 700 %s" % (path, info.st_mode & 0o777, path)
        )


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_digest(value, what):
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise RequestError(Kind.BAD_REQUEST, "%s %r is not a lowercase hex sha256" % (what, value))


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def remove_stale_temp_files(folder):
    """Delete ``*.<pid>.tmp`` uploads whose writer process is gone (it died mid-upload)."""
    for name in os.listdir(folder):
        parts = name.rsplit(".", 2)
        if len(parts) == 3 and parts[2] == "tmp" and parts[1].isdigit():
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                _remove(os.path.join(folder, name))
            except OSError:
                pass  # alive (another user's process, EPERM): not ours to judge


class ModelStore:
    """``<workdir>/models``: models as ``<sha256>.onnx``, models with external data as bundles
    (``<bundle id>/<relative path>``); a file is used only once its bytes hash right."""

    def __init__(self, workdir):
        self.model_dir = os.path.join(workdir, "models")
        private_dir(self.model_dir)
        remove_stale_temp_files(self.model_dir)
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
        return os.path.exists(self.model_path(sha256))

    def has_file(self, bundle, location):
        return os.path.exists(self.bundle_path(bundle, location))

    def put_model(self, sha256, data):
        self._store(self.model_path(sha256), sha256, data, "model %s" % sha256[:12])

    def put_file(self, bundle, location, sha256, data):
        path = self.bundle_path(bundle, location)
        try:
            private_dir(os.path.dirname(path))
        except EnvironmentProblem as exc:
            raise RequestError(Kind.PUT_MODEL, str(exc)) from None
        self._store(path, sha256, data, "file %r of bundle %s" % (location, bundle[:12]))

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
            _remove(tmp)
            raise RequestError(
                Kind.PUT_MODEL,
                "cannot store %s in %s: %s" % (what, os.path.dirname(path), exc.strerror or one_line(exc)),
            ) from None

    def _verified(self, path, sha256, what):
        """``path`` once its bytes hash to ``sha256`` (a file that does not is deleted: the host
        uploads it again). Checked once per file version and worker process."""
        try:
            info = os.stat(path)
        except OSError:
            raise RequestError(Kind.MISSING_MODEL, "%s is not in the worker cache" % what) from None
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
        if self.verified.get(path) != version:
            digest = file_sha256(path)
            if digest != sha256:
                os.remove(path)
                raise RequestError(Kind.MISSING_MODEL, "cached %s hashed to %s; it was deleted" % (path, digest))
            self.verified[path] = version
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
