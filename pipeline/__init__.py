"""docpipe: Google Docs as living git history, published as workshops with lab desktops."""

from importlib.metadata import PackageNotFoundError, version

try:
    # pyproject.toml is the one place the version is written; the installed metadata carries it.
    __version__ = version("docpipe")
except PackageNotFoundError:  # a checkout imported without being installed
    __version__ = "0+unknown"

USER_AGENT = f"docpipe/{__version__}"
