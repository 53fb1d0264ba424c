"""What runs inside a seat, shipped with docpipe and copied into the desktop images: the check
runner (`docpipe-check`, stdlib only) and the seat agent (files in and out, the learner's progress;
stdlib + aiohttp). Nothing here imports docpipe: a seat has no docpipe installed."""
