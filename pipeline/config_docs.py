"""What docpipe tells its users about the configuration: the commented docpipe.toml that
`docpipe init` writes, and the reference table README.md shows (tests/test_readme.py keeps the
README in step with SCHEMA). Both read SCHEMA's keys in pipeline/config.py; neither decides a value."""

from __future__ import annotations

from pipeline.config import SCHEMA, env_names

STARTER = '''\
# docpipe configuration. Every key can also come from the command line or from an environment
# variable DOCPIPE_<SECTION>_<KEY> (e.g. DOCPIPE_GITEA_URL); flags win over the environment,
# which wins over this file, which wins over the defaults shown here.

# Where the store, the git archive, the site and the lab state live.
workdir = ".docpipe"

[drive]
# The Drive folder to sync: the id at the end of its URL (drive.google.com/drive/folders/<id>).
folder = "REPLACE-WITH-FOLDER-ID"
# Credentials: a service-account or authorized-user JSON file. Unset: Application Default
# Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`), or an
# access token in DOCPIPE_ACCESS_TOKEN.
# credentials = "service-account.json"
jobs = 8
# Requests per second. Drive allows 12,000 a minute per user; 50/s leaves room for others.
max_qps = 50

[gitea]
# Push is skipped while url is unset. The token comes from GITEA_TOKEN (scopes: write:repository,
# read:user, read:organization).
# url = "https://gitea.example.org"
# owner = "cswg"
# repo = "design-docs"
private = true

[render]
# A directory of templates that replace docpipe's own, file by file.
# templates = "my-templates"

[publish]
site_branch = false

[hooks]
enabled = true
# dirs = ["ci/hooks"]
timeout = 1800

[lab]
# registry = "registry.example.org:5000"
prefix = "docpipe"
max_seats = 30
listen = "0.0.0.0:8443"           # the lab gateway (HTTPS; see README "Running a class")
# public_url = "https://lab.example.org:8443"
ttl = "4h"
# allowed_bases = { debian-novnc = "docpipe/debian-novnc:latest" }

# Several folders? Replace [drive].folder with one table per folder:
# [[folders]]
# id = "FOLDER-ID-1"
# name = "design-docs"
# [folders.gitea]
# repo = "design-docs"
'''


def reference_markdown() -> str:
    """The config reference table for README.md (a test keeps the README in step with SCHEMA)."""
    rows = ["| key | environment | default | meaning |", "|---|---|---|---|"]
    for section, keys in SCHEMA.items():
        for key, spec in keys.items():
            dotted = f"{section}.{key}" if section else key
            env_text = ", ".join(f"`{e}`" for e in env_names(section, key))
            default = "—" if spec.default in (None, [], {}) else f"`{spec.default!r}`".replace("'", '"')
            rows.append(f"| `{dotted}` | {env_text} | {default} | {spec.help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(reference_markdown())
