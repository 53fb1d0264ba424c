"""From a workshop doc to a desktop image: section -> spec -> Dockerfile -> build and push.

`workshops` finds the workshop docs of the archive, `section` and `spec` read their "Lab desktop"
section (pure), `bases` knows each desktop base, `dockerfile` makes the build context (pure),
`engine` is the only module that talks to the Docker Engine, `provision` plans, builds and pushes,
and `tag` is the one question render asks (a workshop's spec and image tag).
"""
