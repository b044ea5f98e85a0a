"""A Python HTTP app for the command capability's tests.

It knows nothing about wattd: it listens on $PORT (on $HOST, default
127.0.0.1), as fronted programs do. / answers "python app <pid>", /slow
after ?ms= milliseconds (in-flight work for graceful-stop tests), /exit
exits with ?code= (default 1). /mesh?app=X&path=/p calls
http://X.plt.local/p the way a program without a mesh client does: with
$WATTD_MESH_PROXY as its HTTP proxy, and answers "<status> <body>".
SIGTERM finishes the requests in flight, then exits.
"""

import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): one request per connection, so no idle
    # keep-alive connection holds up a graceful stop.

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
        if url.path == "/mesh":
            self.reply(mesh_call(query["app"][0], query.get("path", ["/"])[0]))
            return
        self.reply(f"python app {os.getpid()}\n")
        if url.path == "/exit":
            code = int(query.get("code", ["1"])[0])
            threading.Timer(0.01, os._exit, [code]).start()

    def reply(self, text):
        body = text.encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        print("%s %s" % (self.address_string(), fmt % args), flush=True)


def mesh_call(app, path):
    # The proxy URL carries its credentials; urllib sends them as
    # Proxy-Authorization, as curl and requests do.
    proxy = urllib.request.ProxyHandler({"http": os.environ.get("WATTD_MESH_PROXY", "")})
    opener = urllib.request.build_opener(proxy)
    try:
        with opener.open(f"http://{app}.plt.local{path}", timeout=10) as r:
            return f"{r.status} {r.read().decode()}"
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read().decode()}"
    except Exception as e:  # noqa: BLE001 - the test wants to see any failure
        return f"error {e}"


class Server(ThreadingHTTPServer):
    # Non-daemon request threads, so server_close waits for requests in
    # flight: a graceful stop.
    daemon_threads = False


def main():
    port = os.environ.get("PORT")
    if not port:
        print("PORT is not set", file=sys.stderr, flush=True)
        sys.exit(2)
    server = Server((os.environ.get("HOST", "127.0.0.1"), int(port)), Handler)

    def stop(signum, frame):
        # shutdown() waits for serve_forever, which runs on this thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"python app {os.getpid()} listening on port {port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
