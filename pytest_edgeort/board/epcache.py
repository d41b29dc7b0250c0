"""The worker's EP-context cache: compiled graphs (EP-context models) under our own key, used only once hashed.

``<workdir>/epcontext/<key>.onnx`` is the EP-context model ONNX Runtime wrote when it compiled a model
(``ep.context_enable=1``, the compiled graph embedded), ``<key>.json`` the entry: the fields the key was
made from, the context model's sha256, and the placement and effective options of the session that
compiled it (a context model shows one ``EPContext`` node, so they are recorded when the entry is made).
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

FORMAT = 1  # the entry layout; part of every key


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

    def _paths(self, key):
        base = os.path.join(self.dir, key)
        return base + ".onnx", base + ".json"

    def temp_path(self, key):
        """Where ORT writes the context model while compiling (``*.<pid>.tmp``: removed if this process dies)."""
        return "%s.%d.tmp" % (self._paths(key)[0], os.getpid())

    def lookup(self, fields):
        """The verified entry of ``fields``; None when there is none; StaleEntry when there is one
        that does not match (other fields, bytes that do not hash right, unreadable)."""
        key = self.key(fields)
        model, entry = self._paths(key)
        if not os.path.lexists(entry):
            return None
        try:
            with open(entry, "rb") as f:
                record = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError) as exc:
            raise StaleEntry("its entry file %s does not read as JSON (%s)" % (entry, exc)) from None
        wanted = dict(fields, format=FORMAT)
        if not isinstance(record, dict) or record.get("key") != wanted:
            theirs = record.get("key") if isinstance(record, dict) and isinstance(record.get("key"), dict) else {}
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
            for path in (model, entry):  # last use, for the size cap's eviction (mtime kept)
                os.utime(path, ns=(now, os.lstat(path).st_mtime_ns), follow_symlinks=False)
        except OSError as exc:
            raise StaleEntry("its context model %s cannot be read (%s)" % (model, exc.strerror or exc)) from None
        return ContextEntry(model, record)

    def store(self, fields, temp, placement, facts):
        """Make ``temp`` (the context model just written) the entry of ``fields``, with the compiling
        session's ``placement`` and ``facts``; False when ORT wrote no context model there."""
        key = self.key(fields)
        if not os.path.isfile(temp):
            return False
        model, entry = self._paths(key)
        record = {
            "key": dict(fields, format=FORMAT),
            "sha256": file_sha256(temp),
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
            for path in (temp, tmp_entry, model, entry):
                remove_quietly(path)
            return False
        return True

    def drop(self, fields):
        """Remove the entry of ``fields`` (before it is rebuilt)."""
        for path in self._paths(self.key(fields)):
            remove_quietly(path)
            self.verified.pop(path, None)
