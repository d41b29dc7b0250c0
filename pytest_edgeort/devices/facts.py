"""A worker's capabilities reply checked field by field before anything reads it (a board's facts are data)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

Check = Callable[[Any], bool]


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


# key -> (required, check, what was expected); keys not listed are kept as they are (facts for the report)
FIELDS: Dict[str, Tuple[bool, Check, str]] = {
    "providers": (True, _str_list, "a list of provider names"),
    "plugin_eps": (False, _str_list, "a list of provider names"),
    "plugin_errors": (False, _str_map, "an object of provider name -> error"),
    "onnxruntime": (False, _text, "a version string"),
    "platform": (False, _text, "a string"),
    "machine": (False, _text, "a string"),
    "soc": (False, _text, "a string"),
    "qnn": (False, lambda v: v is None or isinstance(v, dict), "an object"),
}
QNN_FIELDS: Dict[str, Tuple[bool, Check, str]] = {
    "backends": (False, _str_list, "a list of backend names"),
    "probed": (False, _str_list, "a list of backend names"),
    "unusable": (False, _str_map, "an object of backend -> reason"),
    "sdk_version": (False, _text, "a version string"),
    "ep_package_version": (False, _text, "a version string"),
}


def _problem(facts: Mapping[str, Any], fields: Mapping[str, Tuple[bool, Check, str]], prefix: str) -> Optional[str]:
    for key, (required, check, expected) in fields.items():
        if key not in facts:
            if required:
                return f"has no {prefix + key!r} (expected {expected})"
            continue
        if not check(facts[key]):
            return f"{prefix + key!r} is {facts[key]!r:.100} (expected {expected})"
    return None


def capabilities_problem(reply: Any) -> Optional[str]:
    """None when ``reply`` is a capabilities reply every reader can use, else what is wrong, in a few words."""
    problem = _problem(reply, FIELDS, "")
    if problem is None and isinstance(reply.get("qnn"), dict):
        problem = _problem(reply["qnn"], QNN_FIELDS, "qnn.")
    return problem
