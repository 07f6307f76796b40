"""nginx serving the directory with ``sendfile on``, one worker: the physical reference.

``static_nginx.py PORT DIRECTORY`` writes a configuration into a temporary directory and
becomes nginx (``exec``), in the foreground and without a master process, so the process
measured is the one that serves.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import _routes

CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port};
        location /files/ {{ alias {root}/; }}
        location / {{ return 404; }}
    }}
}}
"""

if __name__ == "__main__":
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    tmp = tempfile.mkdtemp(prefix="kyoukai-bench-nginx-")
    config = os.path.join(tmp, "nginx.conf")
    with open(config, "w") as file:
        file.write(
            CONFIG.format(
                tmp=tmp,
                host=_routes.HOST,
                port=_routes.port_from_argv(),
                root=os.path.abspath(sys.argv[2]),
            )
        )
    os.execv(nginx, [nginx, "-c", config, "-p", tmp, "-e", "stderr"])
