"""Reading the YAML front matter every archive doc starts with (written by pipeline.convert).

Its own small module so that render and lab can read headers without importing the converter.
"""

from __future__ import annotations


def split(text: str) -> tuple[dict[str, str], str]:
    """(front matter as strings, body); ({}, text) when there is none or it is not valid YAML."""
    import yaml

    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---\n", 3)
    if end < 0 and text.endswith("\n---"):
        end = len(text) - 4
    if end < 0:
        return {}, text
    try:  # libyaml's loader when built in: the pure-Python one dominated render's time
        data = yaml.load(text[4:end + 1], Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(data, dict):
        return {}, text
    return {str(k): "" if v is None else str(v) for k, v in data.items()}, text[end + 5:]


def read(text: str) -> dict[str, str]:
    """Just the front matter."""
    return split(text)[0]
