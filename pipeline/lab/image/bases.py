"""What docpipe knows about each kind of desktop base: user, home, desktop port, password env."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import BadInput
from pipeline.lab.image.spec import DEFAULT_BASES

NOVNC_ALIAS = "debian-novnc"
NOVNC_REPO = DEFAULT_BASES[NOVNC_ALIAS]  # docpipe's own recipe, templates/desktop/debian-novnc

# An image reference from operator config; still checked, since it is written after FROM.
_IMAGE_REF = re.compile(r"[a-z0-9][a-z0-9._\-/:]{0,200}(@sha256:[0-9a-f]{64})?")


@dataclass(frozen=True)
class BaseProfile:
    user: str | None  # USER to restore after root build steps; None keeps the base's own
    uid: int
    gid: int
    home: str
    desktop_port: int  # the HTTP port serving the desktop in a browser
    url_path: str  # what a student opens on that port
    password_env: tuple[str, ...]  # env vars that receive the seat's password
    extra_env: tuple[tuple[str, str], ...] = ()
    # The seat agent's port (files in and out, the learner's progress: pipeline/lab/seat/agent.py);
    # 0 when the base has none (a webtop carries no docpipe agent and may lack aiohttp).
    agent_port: int = 0


NOVNC_PROFILE = BaseProfile(
    user="student", uid=1000, gid=1000, home="/home/student", desktop_port=6080,
    url_path="/vnc.html?autoconnect=1&resize=scale", password_env=("VNC_PASSWORD",), agent_port=6081,
)
# linuxserver.io webtops: s6 init as root, user abc (PUID), home /config, KasmVNC web on 3000,
# HTTP basic auth from CUSTOM_USER/PASSWORD.
WEBTOP_PROFILE = BaseProfile(
    user=None, uid=1000, gid=1000, home="/config", desktop_port=3000, url_path="/",
    password_env=("PASSWORD",), extra_env=(("CUSTOM_USER", "student"),),
)


def profile_for(alias: str, image: str) -> BaseProfile:
    if alias == NOVNC_ALIAS or image.split(":")[0] == NOVNC_REPO:
        return NOVNC_PROFILE
    return WEBTOP_PROFILE


def check_image_ref(ref: str) -> str:
    if not _IMAGE_REF.fullmatch(ref):
        raise BadInput(f"lab base image {ref!r} is not a valid image reference")
    return ref
