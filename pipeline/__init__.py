"""docpipe: Google Docs as living git history, published as workshops with lab desktops."""

__version__ = "0.1.0"
