#!/bin/sh
# Run nginx and, every few seconds, drop the routes of seats past their expiry, so an expired
# token gets 404 even before the next `docpipe lab` command reaps the container.
# Route files are named <expiry as YYYYmmddHHMMSS>-<seat>.conf by docpipe.
set -eu
nginx
while sleep 5; do
    now=$(date -u +%Y%m%d%H%M%S)
    changed=0
    for f in /etc/docpipe/seats/*.conf; do
        [ -e "$f" ] || continue
        exp=$(basename "$f" | cut -d- -f1)
        case "$exp" in *[!0-9]*|'') continue ;; esac
        if [ "$exp" -le "$now" ]; then rm -f "$f"; changed=1; fi
    done
    [ "$changed" = 0 ] || nginx -s reload || true  # docpipe may be reloading at the same moment
    # Exit (and let the engine restart the gateway) only when nginx's master is really gone, not
    # while it is still writing its pid file on a loaded machine.
    if [ -s /run/nginx.pid ] && ! kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then exit 1; fi
done
