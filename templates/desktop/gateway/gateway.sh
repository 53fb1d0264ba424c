#!/bin/sh
# The lab gateway: nginx, squid when /etc/docpipe/egress.conf asks for it, and a loop that every
# few seconds removes the files of seats and class pages past their expiry (their names start with
# it, as YYYYmmddHHMMSS), so an expired link gets 404 with no docpipe command run. A reload keeps
# open websockets on the old nginx workers; when seats expire the loop ends those workers, so an
# expired seat's viewer is cut off within seconds (the other viewers' noVNC reconnects at once).
#   docpipe-gateway            run (the container's command)
#   docpipe-gateway clear      remove every route (docpipe writes them all again)
#   docpipe-gateway reload     check and load the configuration, start/stop/reconfigure squid
set -eu
CONF=/etc/docpipe
NGINX="nginx -e stderr"
SQUID_PID=/tmp/squid.pid

squid_running() { [ -s "$SQUID_PID" ] && kill -0 "$(cat "$SQUID_PID")" 2>/dev/null; }

egress() {
    if [ -s "$CONF/egress.conf" ]; then
        if squid_running; then squid -f "$CONF/egress.conf" -k reconfigure
        else squid -f "$CONF/egress.conf" -N & fi
    elif squid_running; then
        kill "$(cat "$SQUID_PID")" || true
    fi
}

reload() {
    $NGINX -t -q
    $NGINX -s reload
    egress
}

# Old workers still serving websockets after a reload: "nginx: worker process is shutting down".
end_old_workers() {
    for cmd in /proc/[0-9]*/cmdline; do
        case "$(tr '\0' ' ' < "$cmd" 2>/dev/null)" in
            *"worker process is shutting down"*) pid=${cmd#/proc/}; kill -TERM "${pid%/cmdline}" 2>/dev/null || true ;;
        esac
    done
}

expire() {
    now=$(date -u +%Y%m%d%H%M%S)
    changed=0
    for f in "$CONF"/servers/*.conf "$CONF"/classes/*.conf "$CONF"/pages/*.html; do
        [ -e "$f" ] || continue
        exp=$(basename "$f" | cut -d- -f1)
        case "$exp" in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) ;; *) continue ;; esac
        if [ "$exp" -le "$now" ]; then rm -f "$f"; changed=1; fi
    done
    if [ "$changed" = 1 ]; then
        $NGINX -s reload || true  # docpipe may be reloading at the same moment
        sleep 1
        end_old_workers
    fi
}

case "${1:-run}" in
    clear) rm -rf "$CONF"/servers/* "$CONF"/classes/* "$CONF"/pages/* "$CONF"/egress.conf; exit 0 ;;
    reload) reload; exit 0 ;;
esac

$NGINX
egress
while sleep 5; do
    expire
    [ ! -s "$CONF/egress.conf" ] || squid_running || egress  # squid stopped: start it again
    # Exit (and let the engine restart the gateway) only when nginx's master is really gone, not
    # while it is still writing its pid file on a loaded machine.
    if [ -s /tmp/nginx.pid ] && ! kill -0 "$(cat /tmp/nginx.pid)" 2>/dev/null; then exit 1; fi
done
