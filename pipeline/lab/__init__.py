"""Lab desktops, in two halves that meet only through an image reference and its labels.

- `pipeline.lab.image`: a workshop doc's "Lab desktop" section -> a validated spec -> a Dockerfile
  and build context -> an image built and pushed (the provision stage). Pure up to `engine`.
- `pipeline.lab.classroom`: seats (token, passwords, expiry) of one image for a class, on Docker
  behind one gateway or on Kubernetes, and the `docpipe lab` commands an instructor types.

`labels` owns every label key both halves write and read; `settings` is the lab's slice of the
configuration. The classroom imports the image side, never the other way round.
"""
