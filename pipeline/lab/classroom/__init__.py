"""Running a class: seats of a workshop's image, one per student, and the instructor's commands.

`backend` is the contract (what a seat is; a second backend implements it), `docker_seats` runs
seats on one Docker host behind `gateway` (nginx, with `tls`), `kube_seats` + `kube_manifests`
run them on Kubernetes, `links` makes and reads every seat link, `roster` turns a class list into
seat names, `instructor` decides a class before any backend runs, `commands` is `docpipe lab`.
"""
