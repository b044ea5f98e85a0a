"""A Python HTTP app for the command capability's tests.

It knows nothing about wattd: it listens on $PORT (on $HOST, default
127.0.0.1), as fronted programs do. / answers "python app <pid>", /slow
after ?ms= milliseconds (in-flight work for graceful-stop tests), /exit
exits with ?code= (default 1). SIGTERM finishes the requests in flight,
then exits.
"""

import os
import signal
import sys
import threading
import time
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
