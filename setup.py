"""The package list, found rather than written down: a subpackage added under pipeline/ is in the
wheel without anyone remembering to list it (a hand-kept list once shipped a wheel without
pipeline.replay). Everything else is declared in pyproject.toml."""

from setuptools import find_namespace_packages, setup

# Shipped folders at the top of the tree, mapped into the package (pyproject.toml's package-dir).
DATA_PACKAGES = ["pipeline._data.templates", "pipeline._data.hooks", "pipeline._data.sample_data"]

# Namespace-aware, so a folder of modules without __init__.py is not silently left out either.
setup(packages=find_namespace_packages(include=["pipeline", "pipeline.*"], exclude=["*.__pycache__"]) + DATA_PACKAGES)
