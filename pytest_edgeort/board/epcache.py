"""The worker's EP-context cache: compiled graphs (EP-context models) under our own key, used only once hashed.

``<workdir>/epcontext/<key>-<sha256 prefix>.onnx`` is the EP-context model ONNX Runtime wrote when it
compiled a model (``ep.context_enable=1``, the compiled graph embedded), ``<key>.json`` the entry: the fields
the key was made from, the context model's file and sha256, and the placement and effective options of the
session that compiled it (a context model shows one ``EPContext`` node, so they are recorded when the entry is made).
The key hashes every field that shapes a compiled graph (the model, onnxruntime, the EP package and QNN
SDK versions, the EP's registration name, provider options, fallback mode, the session config), because
ORT's own compatibility check accepted tampered EP-context metadata in a measurement. A lookup verifies
the entry's fields and the context model's hash; the caller proves a hit by creating the session with
``session.disable_model_compile=1``.
"""

import hashlib
import json
import os
import time

from .store import file_sha256, private_dir, remove_quietly

FORMAT = 2  # the entry layout; part of every key


class StaleEntry(Exception):
    """A cache entry that cannot be used (one line: why); the caller rebuilds it."""


class ContextEntry:
    """A verified entry: the context model's path and what the compiling session recorded."""

    def __init__(self, path, record):
        self.path = path
        self.placement = record.get("placement")
        self.facts = record.get("facts") or {}


class ContextCache:
    """``<workdir>/epcontext``: one EP-context model and one entry file per key."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "epcontext")
        private_dir(self.dir)
        self.verified = {}  # path -> (inode, size, mtime) of the context model whose hash was checked

    @staticmethod
    def key(fields):
        """The entry's name: the sha256 of ``fields`` as canonical JSON (with :data:`FORMAT`)."""
        text = json.dumps(dict(fields, format=FORMAT), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _entry_path(self, key):
        return os.path.join(self.dir, key + ".json")

    def temp_path(self, key):
        """Where ORT writes the context model while compiling (``*.<pid>.tmp``: removed if this process dies)."""
        return os.path.join(self.dir, "%s.onnx.%d.tmp" % (key, os.getpid()))

    def _read(self, key):
        """The entry file's record and the path of the context model it names; None without an entry."""
        entry = self._entry_path(key)
        if not os.path.lexists(entry):
            return None, None
        try:
            with open(entry, "rb") as f:
                record = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise StaleEntry("its entry file %s does not read as JSON (%s)" % (entry, exc)) from None
        name = record.get("file") if isinstance(record, dict) else None
        if not isinstance(name, str) or not name.startswith(key + "-") or os.path.basename(name) != name:
            raise StaleEntry("its entry file %s names no context model of this key" % entry)
        return record, os.path.join(self.dir, name)

    def lookup(self, fields):
        """The verified entry of ``fields``; None when there is none; StaleEntry when there is one
        that does not match (other fields, bytes that do not hash right, unreadable)."""
        key = self.key(fields)
        record, model = self._read(key)
        if record is None:
            return None
        wanted = dict(fields, format=FORMAT)
        if record.get("key") != wanted:
            theirs = record.get("key") if isinstance(record.get("key"), dict) else {}
            changed = sorted(k for k in set(wanted) | set(theirs) if wanted.get(k) != theirs.get(k))
            raise StaleEntry("its entry was made for other %s" % (", ".join(changed) or "fields"))
        try:
            info = os.lstat(model)
            version = (info.st_ino, info.st_size, info.st_mtime_ns)
            if self.verified.get(model) != version:
                digest = file_sha256(model)
                recorded = record.get("sha256")
                if digest != recorded:
                    raise StaleEntry("its context model hashed to %s, not %s as recorded" % (digest, recorded))
                self.verified[model] = version
            now = time.time_ns()
            for path in (model, self._entry_path(key)):  # last use, for the size cap's eviction (mtime kept)
                os.utime(path, ns=(now, os.lstat(path).st_mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise StaleEntry("its context model %s cannot be read (%s)" % (model, exc.strerror or exc)) from None
        return ContextEntry(model, record)

    def store(self, fields, temp, placement, facts):
        """Make ``temp`` (the context model just written) the entry of ``fields``, with the compiling
        session's ``placement`` and ``facts``; False when ORT wrote no context model there.

        The context model is named by its hash (compiling twice gives other bytes), and the entry file,
        replaced last, names it: workers that store the same key at once leave a consistent entry."""
        key = self.key(fields)
        if not os.path.isfile(temp):
            return False
        digest = file_sha256(temp)
        model = os.path.join(self.dir, "%s-%s.onnx" % (key, digest[:16]))
        entry = self._entry_path(key)
        record = {
            "key": dict(fields, format=FORMAT),
            "file": os.path.basename(model),
            "sha256": digest,
            "placement": placement,
            "facts": facts,
        }
        tmp_entry = "%s.%d.tmp" % (entry, os.getpid())
        try:
            os.replace(temp, model)
            with open(tmp_entry, "w") as f:
                json.dump(record, f, sort_keys=True)
            os.replace(tmp_entry, entry)
        except OSError:  # disk full: no entry (the session itself is fine)
            for path in (temp, tmp_entry, model):
                remove_quietly(path)
            return False
        return True

    def drop(self, fields):
        """Remove the entry of ``fields`` and every context model of its key (before it is rebuilt)."""
        key = self.key(fields)
        remove_quietly(self._entry_path(key))
        for name in os.listdir(self.dir):
            if name.startswith(key + "-") and name.endswith(".onnx"):
                path = os.path.join(self.dir, name)
                remove_quietly(path)
                self.verified.pop(path, None)
