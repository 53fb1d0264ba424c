"""Client side of Google Drive: credentials, the service, paging, retries, the rate limit."""

from pipeline.config import DEFAULT_ENDPOINT, DEFAULT_MAX_QPS
from pipeline.drive.auth import SCOPES, LoadedCredentials, ensure_fresh, load_credentials
from pipeline.drive.client import DriveCallError, DriveClient
from pipeline.drive.retry import RetryPolicy

__all__ = [
    "SCOPES", "LoadedCredentials", "ensure_fresh", "load_credentials",
    "DEFAULT_ENDPOINT", "DEFAULT_MAX_QPS", "DriveCallError", "DriveClient", "RetryPolicy",
]
