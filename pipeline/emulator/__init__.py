"""docpipe's Drive API v3 emulator: serve a folder of Docs (sample-data format or generated)
the way Google's Drive API does, for the demo, tests and benchmarks.

    from pipeline.emulator import Emulator, load_dataset
    with Emulator(load_dataset(Path("sample-data")), token="t") as emu:
        ...  # googleapiclient.discovery.build("drive", "v3", client_options={"api_endpoint": emu.api_endpoint}, ...)

The emulator never imports the client side (pipeline.drive) or Google's client libraries.
"""

from pipeline.emulator.dataformat import load_dataset, save_dataset
from pipeline.emulator.generate import generate_dataset
from pipeline.emulator.model import DOC_MIME, FOLDER_MIME, SHORTCUT_MIME, Dataset, NotFound
from pipeline.emulator.server import FAULT_KINDS, Emulator

__all__ = [
    "DOC_MIME", "FAULT_KINDS", "FOLDER_MIME", "SHORTCUT_MIME", "Dataset", "Emulator", "NotFound",
    "generate_dataset", "load_dataset", "save_dataset",
]
