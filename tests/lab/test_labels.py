"""Label keys: spelled in pipeline/lab/labels.py only, and never changed (images built and seats
started by an earlier docpipe carry them; a renamed key would make docpipe blind to them)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.lab import labels

PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
KEY = re.compile(r"io\.docpipe\.|docpipe\.io/|app\.kubernetes\.io/|org\.opencontainers\.")

# Every key as shipped: compare, never regenerate.
SHIPPED = {
    "TITLE_LABEL": "org.opencontainers.image.title",
    "REVISION_LABEL": "org.opencontainers.image.revision",
    "SOURCE_LABEL": "org.opencontainers.image.source",
    "ARCHIVE_LABEL": "io.docpipe.archive",
    "WORKSHOP_IMAGE_LABEL": "io.docpipe.workshop",
    "SPEC_LABEL": "io.docpipe.spec",
    "BASE_LABEL": "io.docpipe.base",
    "MEMORY_LABEL": "io.docpipe.memory",
    "CPUS_LABEL": "io.docpipe.cpus",
    "DESKTOP_PORT_LABEL": "io.docpipe.desktop-port",
    "PORTS_LABEL": "io.docpipe.ports",
    "NAME_LABEL": "app.kubernetes.io/name",
    "MANAGED_LABEL": "app.kubernetes.io/managed-by",
    "WORKSHOP_LABEL": "docpipe.io/workshop",
    "CLASS_LABEL": "docpipe.io/class",
    "SEAT_LABEL": "docpipe.io/seat",
    "EXPIRES_LABEL": "docpipe.io/expires",
    "SEAT_APP": "docpipe-seat",
    "MANAGER": "docpipe",
    "TOKEN_LABEL": "io.docpipe.token",
    "WATCH_LABEL": "io.docpipe.watch-token",
    "CLASS_TOKEN_LABEL": "io.docpipe.class-token",
    "STUDENT_LABEL": "io.docpipe.student",
    "EMAIL_LABEL": "io.docpipe.email",
    "PUBLIC_URL_LABEL": "io.docpipe.public-url",
    "HOME_LABEL": "io.docpipe.home",
    "HOME_KUBE_LABEL": "docpipe.io/home",
    "EGRESS_LABEL": "io.docpipe.egress",
    "GATEWAY_PORT_LABEL": "io.docpipe.gateway-port",
    "WORKDIR_LABEL": "io.docpipe.workdir",
    "STUDENT_ANNOTATION": "docpipe.io/student",
    "REVISION_ANNOTATION": "docpipe.io/revision",
    "HOST_ANNOTATION": "docpipe.io/host",
    "GATEWAY_LABEL": "io.docpipe.lab-gateway",
    "LISTEN_LABEL": "io.docpipe.listen",
    "TLS_LABEL": "io.docpipe.tls",
    "PORT_POOL_LABEL": "io.docpipe.port-pool",
    "WORKDIR_PATH_LABEL": "io.docpipe.workdir-path",
    "ORIGIN_LABEL": "docpipe.io/origin",
    "LAUNCHER_ORIGIN": "launcher",
}


def test_keys_are_the_shipped_ones() -> None:
    public = {k: v for k, v in vars(labels).items() if k.isupper() and not k.startswith("_")}
    assert public == SHIPPED


def test_only_labels_py_spells_a_key() -> None:
    spelled = [f"{p.relative_to(PIPELINE.parent)}:{n}: {line.strip()}"
               for p in sorted(PIPELINE.rglob("*.py")) if p.name != "labels.py"
               for n, line in enumerate(p.read_text().splitlines(), 1) if KEY.search(line)]
    assert spelled == []


def test_the_image_tag_hashes_docpipes_own_labels_only() -> None:
    assert labels.in_image_tag(labels.ARCHIVE_LABEL) and labels.in_image_tag(labels.PORTS_LABEL)
    assert not any(labels.in_image_tag(k) for k in (labels.REVISION_LABEL, labels.TITLE_LABEL, labels.SOURCE_LABEL))
