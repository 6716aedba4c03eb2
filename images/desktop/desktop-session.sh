#!/bin/sh
# The desktop session of the reference desktop image: an X server, a window
# manager, a terminal and a VNC server. It stays in the foreground while the
# X server lives, so the container runs as long as the desktop does.
set -u
# PID 1 ignores signals it has no handler for: stop the session on TERM/INT.
trap 'trap - TERM INT; kill -TERM 0 2>/dev/null; exit 0' TERM INT
export DISPLAY="${DISPLAY:-:0}"
GEOMETRY="${TFORK_DESKTOP_GEOMETRY:-1024x768x24}"

Xvfb "$DISPLAY" -screen 0 "$GEOMETRY" -nolisten tcp -noreset &
xpid=$!
i=0
until xdpyinfo >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -gt 100 ] && { echo "tfork-desktop: X server did not start" >&2; exit 1; }
  sleep 0.1
done
openbox >/tmp/openbox.log 2>&1 &
xterm -geometry 80x24+40+40 -title tfork-xterm >/dev/null 2>&1 &
x11vnc -display "$DISPLAY" -forever -shared -nopw -rfbport 5900 -quiet >/tmp/x11vnc.log 2>&1 &
echo "tfork-desktop: ready on $DISPLAY (vnc :5900)"
wait "$xpid"
