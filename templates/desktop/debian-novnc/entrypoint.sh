#!/bin/sh
# Start one seat: X server, window manager, the doc's autostart programs, a VNC server that
# only listens on localhost and asks for the seat's password, and noVNC on port 6080.
set -eu
if [ -z "${VNC_PASSWORD:-}" ]; then
    echo "docpipe-desktop: VNC_PASSWORD is not set; refusing to start an open desktop" >&2
    exit 64
fi
umask 077
mkdir -p "$HOME/.docpipe"
# printf is a shell builtin: the password never appears in a process's argv.
printf '%s\n' "$VNC_PASSWORD" > "$HOME/.docpipe/vncpass"
# x11vnc reads view-only passwords after this marker: the watch link can look, never type.
if [ -n "${VNC_VIEW_PASSWORD:-}" ]; then
    printf '__BEGIN_VIEWONLY__\n%s\n' "$VNC_VIEW_PASSWORD" >> "$HOME/.docpipe/vncpass"
fi
unset VNC_PASSWORD VNC_VIEW_PASSWORD
umask 022

# The seat ends at its expiry (RFC 3339, set by `docpipe lab up`) with no command run: tini (PID 1)
# passes the TERM on, websockify exits and the container stops, which closes every viewer's
# connection. The container (and the student's files) stay until `docpipe lab reap`.
if [ -n "${DOCPIPE_EXPIRES:-}" ]; then
    end=$(date -u -d "$DOCPIPE_EXPIRES" +%s)
    left=$((end - $(date -u +%s)))
    if [ "$left" -le 0 ]; then
        echo "docpipe-desktop: this seat expired at $DOCPIPE_EXPIRES" >&2
        exit 0
    fi
    (sleep "$left"; kill -TERM 1) &
fi

# Idle seats (`docpipe lab status`, `lab reap --idle`): every 5 s, whether a viewer is connected,
# i.e. an ESTABLISHED (st 01) TCP connection on x11vnc's port 5900 (hex 170C) in /proc/net/tcp*
# (websockify opens one per browser); the epoch of the last one seen goes to /tmp/docpipe-seen.
(while :; do
    if cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$2 ~ /:170C$/ && $4 == "01" {f=1} END {exit !f}'; then
        date -u +%s > /tmp/docpipe-seen.new && mv -f /tmp/docpipe-seen.new /tmp/docpipe-seen
    fi
    sleep 5
done) &

Xvfb "$DISPLAY" -screen 0 "${GEOMETRY}x24" -nolisten tcp &
for _ in $(seq 1 50); do
    xdpyinfo >/dev/null 2>&1 && break
    sleep 0.1
done
openbox &
tint2 >/dev/null 2>&1 &
# The browser opening the workshop's first port starts with the first student's login
# (docpipe-first-login, run by x11vnc), not here.

# Autostart entries are data (.desktop files written by docpipe from a validated spec):
# their Exec= line is split into words, never evaluated by the shell; globbing is off.
for entry in /etc/xdg/autostart/docpipe-*.desktop; do
    [ -e "$entry" ] || continue
    cmd=$(sed -n 's/^Exec=//p' "$entry" | head -n 1)
    set -f
    [ -n "$cmd" ] && (cd "$HOME" && exec $cmd >/dev/null 2>&1) &
    set +f
done

# The seat agent (pipeline/lab/seat/agent.py): the gateway routes /s/<key>/files/ and /progress to it.
python3 /usr/local/lib/docpipe/agent.py >/dev/null 2>&1 &

x11vnc -display "$DISPLAY" -rfbport 5900 -localhost -forever -shared -quiet \
    -passwdfile "rm:$HOME/.docpipe/vncpass" -noxdamage \
    -afteraccept /usr/local/bin/docpipe-first-login >/dev/null 2>&1 &
# A viewer's clipboard (noVNC's panel) reaches only x11vnc's cut buffer; autocutsel makes it the
# CLIPBOARD and PRIMARY selections programs paste from (and back). Not with -fork: a forked
# autocutsel missed the cut buffer's changes for its first seconds.
autocutsel >/dev/null 2>&1 &
autocutsel -selection PRIMARY >/dev/null 2>&1 &
exec websockify --web /usr/share/novnc 6080 127.0.0.1:5900
