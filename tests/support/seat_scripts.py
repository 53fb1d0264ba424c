"""Programs the Docker lab tests run inside a seat (`python3 -c SCRIPT ...`, as its student)."""

# A student's workshop app: a page that tries to put Service Workers over other origins, a worker
# script asking for the whole origin (Service-Worker-Allowed: /) and a cookie for the parent domain
# on every answer, and /echo, which answers with the request's headers.
APP = r'''
import http.server, json, sys
PAGE = b"""<!doctype html><html><head><title>pending</title></head><body><pre id="out"></pre><script>
const want = new URLSearchParams(location.hash.slice(1));
async function attempt(script, scope) {
  try { const r = await navigator.serviceWorker.register(script, {scope}); return "registered " + r.scope; }
  catch (e) { return "refused " + e.name; }
}
(async () => {
  const here = new URL("sw.js", location.href).href;
  const out = {own: await attempt(here, new URL("./", location.href).href),
               wide: await attempt(here, new URL("/", location.href).href),
               seat: await attempt(want.get("seat") + "sw.js", want.get("seat")),
               klass: await attempt(want.get("class") + "sw.js", want.get("class"))};
  document.getElementById("out").textContent = JSON.stringify(out);
  document.title = "done";
})();
</script></body></html>"""
SW = b"self.addEventListener('fetch', e => e.respondWith(new Response('hijacked')));"
class App(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/echo"):
            body, ctype = json.dumps(dict(self.headers.items())).encode(), "application/json"
        elif self.path.endswith("sw.js"):
            body, ctype = SW, "text/javascript"
        else:
            body, ctype = PAGE, "text/html"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Service-Worker-Allowed", "/")
        self.send_header("Set-Cookie", "wide=1; Domain=" + sys.argv[2] + "; Path=/")
        self.send_header("Cache-Control", "public, max-age=86400")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), App).serve_forever()
'''

# Connect to every TCP port (or the ports argv[3] lists) of every target (argv[1], comma-separated:
# addresses or names), waiting argv[2] seconds per batch, and print, as JSON, which answered and
# how the others failed. Thousands of connects are in flight at
# once; on a bridge a listening port answers within microseconds, so a short wait per batch is plenty.
PROBE = r'''
import errno, itertools, json, selectors, socket, sys, time
found, failed, start = [], {}, time.monotonic()
def count(what):
    failed[what] = failed.get(what, 0) + 1
targets = []
for target in sys.argv[1].split(","):
    try:
        targets.append((target, socket.gethostbyname(target)))
    except OSError:
        count("unresolved " + target)
ports = [int(p) for p in sys.argv[3].split(",")] if len(sys.argv) > 3 else range(1, 65536)
pairs = ((t, a, p) for p in ports for t, a in targets)
while True:
    batch = list(itertools.islice(pairs, 16384))
    if not batch:
        break
    sel, pending = selectors.DefaultSelector(), {}
    for target, address, port in batch:
        s = socket.socket()
        s.setblocking(False)
        rc = s.connect_ex((address, port))
        if rc in (0, errno.EINPROGRESS):
            sel.register(s, selectors.EVENT_WRITE, f"{target}:{port}")
            pending[s] = port
        else:
            count(errno.errorcode.get(rc, str(rc)))
            s.close()
    deadline = time.monotonic() + float(sys.argv[2])
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc == 0:
                found.append(key.data)
            else:
                count(errno.errorcode.get(rc, str(rc)))
            sel.unregister(s)
            s.close()
            del pending[s]
    for s in pending:
        count("no answer")
        s.close()
print(json.dumps({"open": found, "failed": failed, "seconds": round(time.monotonic() - start, 1)}))
'''
