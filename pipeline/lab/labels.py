"""Every label key docpipe puts on what it makes (images, seats, the gateway), for Docker and
Kubernetes alike: the one place they are spelled.

The keys are a contract with what already exists: images built and seats started by an earlier
docpipe carry them, and they are how `lab status`, `lab down`, reap and `:latest` find and trust
docpipe's own objects on a shared engine or cluster (there is no state file). Renaming one makes
docpipe blind to everything made before; add keys, never change them.
"""

from __future__ import annotations

# ------------------------------------------------------------------ images (the desktop Dockerfile)
# Written by image/dockerfile.py as LABEL lines; read back from the image by `lab up` and the
# Docker seats. OCI's standard keys say where the image comes from.
TITLE_LABEL = "org.opencontainers.image.title"
REVISION_LABEL = "org.opencontainers.image.revision"  # also copied onto Docker seats
SOURCE_LABEL = "org.opencontainers.image.source"
# Whose image it is: docpipe moves `:latest` only on images of its own archive.
ARCHIVE_LABEL = "io.docpipe.archive"
WORKSHOP_IMAGE_LABEL = "io.docpipe.workshop"
SPEC_LABEL = "io.docpipe.spec"  # the spec's digest
BASE_LABEL = "io.docpipe.base"  # the base alias; also copied onto Docker seats
MEMORY_LABEL = "io.docpipe.memory"  # bytes
CPUS_LABEL = "io.docpipe.cpus"
DESKTOP_PORT_LABEL = "io.docpipe.desktop-port"  # also on Docker seats
PORTS_LABEL = "io.docpipe.ports"  # the workshop's ports, comma-separated; also on Docker seats
_IMAGE_TAG_PREFIX = "io.docpipe."


def in_image_tag(key: str) -> bool:
    """Whether an image label is part of what the image tag hashes: docpipe's own keys are (they say
    what the desktop is and whose it is); OCI's are not (the revision changes with every commit,
    and an unchanged spec on a new commit must keep its tag)."""
    return key.startswith(_IMAGE_TAG_PREFIX)


# ------------------------------------------------------------------ seats, both backends
# Labels on every seat container (Docker) and every seat object (Kubernetes): how seats are found.
NAME_LABEL = "app.kubernetes.io/name"
MANAGED_LABEL = "app.kubernetes.io/managed-by"  # also on the gateway and its network
WORKSHOP_LABEL = "docpipe.io/workshop"
CLASS_LABEL = "docpipe.io/class"
SEAT_LABEL = "docpipe.io/seat"
EXPIRES_LABEL = "docpipe.io/expires"  # RFC 3339 UTC; an annotation on Kubernetes objects
# Who started a seat: "launcher" on the seats `docpipe lab serve` starts (a class's carry none).
ORIGIN_LABEL = "docpipe.io/origin"
LAUNCHER_ORIGIN = "launcher"
SEAT_APP = "docpipe-seat"  # NAME_LABEL's value on seats
MANAGER = "docpipe"  # MANAGED_LABEL's value on everything docpipe makes

# ------------------------------------------------------------------ Docker seats only
# A Docker seat keeps everything `lab status` and the gateway need on its container.
TOKEN_LABEL = "io.docpipe.token"
WATCH_LABEL = "io.docpipe.watch-token"
CLASS_TOKEN_LABEL = "io.docpipe.class-token"
STUDENT_LABEL = "io.docpipe.student"
EMAIL_LABEL = "io.docpipe.email"
PUBLIC_URL_LABEL = "io.docpipe.public-url"  # also on the gateway
EGRESS_LABEL = "io.docpipe.egress"  # "none" | "internet"
GATEWAY_PORT_LABEL = "io.docpipe.gateway-port"  # behind an IP address: the seat's first port after the listen port
# A student's home (a named volume per workshop and seat, classroom/homes.py): the home's key,
# a hash of workshop and seat (never the student's name).
HOME_LABEL = "io.docpipe.home"
# Whose lab it is: a short hash of the workdir (gateway.lab_id) on seats, their networks, the
# gateway and its volume, so one workdir's commands never touch another's.
WORKDIR_LABEL = "io.docpipe.workdir"

# ------------------------------------------------------------------ Kubernetes seats only (annotations)
STUDENT_ANNOTATION = "docpipe.io/student"
REVISION_ANNOTATION = "docpipe.io/revision"
HOME_KUBE_LABEL = "docpipe.io/home"  # on a seat's home (PersistentVolumeClaim): homes.home_key
HOST_ANNOTATION = "docpipe.io/host"  # so `lab status` rebuilds links without the settings that made them

# ------------------------------------------------------------------ the Docker lab gateway
GATEWAY_LABEL = "io.docpipe.lab-gateway"
LISTEN_LABEL = "io.docpipe.listen"
TLS_LABEL = "io.docpipe.tls"
PORT_POOL_LABEL = "io.docpipe.port-pool"  # seat ports published after the listen port (0: a host per seat)
WORKDIR_PATH_LABEL = "io.docpipe.workdir-path"  # says whose gateway holds a listen address
