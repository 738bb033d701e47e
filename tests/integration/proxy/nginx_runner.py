"""docker/nginx.conf in a real nginx, on this machine, in front of a local API.

The nginx is Debian's `nginx` package (installed here with apt-get when it is
missing, so that a fresh machine runs the test). That package is nginx 1.22;
the image compose.yaml runs is 1.28. The config is used as it is, except:

- `server api:8000 resolve;` becomes `server 127.0.0.1:<api port>;`: the
  upstream `resolve` flag is new in nginx 1.27.3, and there is no Docker DNS
  here to resolve `api` anyway;
- `listen 8080` (and `listen 8443 ssl` of docker/nginx-tls.conf) become free
  ports on 127.0.0.1.

Nothing else is rewritten. nginx runs the way compose.yaml starts it
(`nginx -p <dir>/ -e stderr -g "daemon off;"`), with `user root;` added on the
command line when the tests run as root, so its workers may read the test's
private temp directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.celery.celery_stack import Proc, free_port, spawn

ROOT = Path(__file__).resolve().parents[3]
NGINX_CONF = ROOT / "docker" / "nginx.conf"
NGINX_TLS_CONF = ROOT / "docker" / "nginx-tls.conf"


def nginx_binary() -> str:
    """The nginx executable; installs Debian's package first if there is none."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found:
        return found
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "nginx"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    found = shutil.which("nginx", path="/usr/sbin:/sbin:/usr/bin")
    if not found:
        raise RuntimeError("nginx is still missing after apt-get install nginx")
    return found


def _replace_once(text: str, old: str, new: str, where: str) -> str:
    assert text.count(old) == 1, f"{where}: expected exactly one {old!r}"
    return text.replace(old, new)


def render(api_port: int, http_port: int, tls_port: int | None) -> tuple[str, str | None]:
    """nginx.conf (and nginx-tls.conf) with only the rewrites the module docstring lists."""
    conf = NGINX_CONF.read_text()
    conf = _replace_once(
        conf, "server api:8000 resolve;", f"server 127.0.0.1:{api_port};", "nginx.conf"
    )
    conf = _replace_once(conf, "listen 8080;", f"listen 127.0.0.1:{http_port};", "nginx.conf")
    tls = None
    if tls_port is not None:
        tls = _replace_once(
            NGINX_TLS_CONF.read_text(),
            "listen 8443 ssl;",
            f"listen 127.0.0.1:{tls_port} ssl;",
            "nginx-tls.conf",
        )
    return conf, tls


def self_signed_certificate(directory: Path) -> Path:
    """certs/tls.crt and certs/tls.key (EC P-256, for localhost and 127.0.0.1)."""
    certs = directory / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(certs / "tls.key"),
            "-out",
            str(certs / "tls.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certs / "tls.crt"


@dataclass
class Nginx:
    proc: Proc
    url: str
    tls_url: str | None
    ca_file: Path | None

    def log(self) -> str:
        return self.proc.log()

    def close(self) -> None:
        self.proc.stop(10)


def start_nginx(directory: Path, api_port: int, tls: bool = True) -> Nginx:
    """nginx with docker/nginx.conf (and HTTPS) in `directory`, proxying to `api_port`."""
    binary = nginx_binary()
    http_port = free_port()
    tls_port = free_port() if tls else None
    conf, tls_conf = render(api_port, http_port, tls_port)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "nginx.conf").write_text(conf)
    ca_file = None
    if tls_conf is not None:
        (directory / "tls").mkdir(exist_ok=True)
        (directory / "tls" / "https.conf").write_text(tls_conf)
        ca_file = self_signed_certificate(directory)
    globals_ = "daemon off;" + (" user root;" if os.geteuid() == 0 else "")
    command = [binary, "-p", f"{directory}/", "-c", str(directory / "nginx.conf"), "-e", "stderr"]
    tested = subprocess.run([*command, "-t", "-g", globals_], capture_output=True, text=True)
    if tested.returncode != 0:
        raise RuntimeError(f"nginx -t refused the config:\n{tested.stderr}")
    proc = spawn("nginx", [*command, "-g", globals_], directory)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", http_port), timeout=1):
                break
        except OSError:
            if not proc.alive() or time.monotonic() > deadline:
                proc.stop(5)
                raise RuntimeError(f"nginx did not start:\n{proc.log()[-3000:]}") from None
            time.sleep(0.05)
    return Nginx(
        proc=proc,
        url=f"http://127.0.0.1:{http_port}",
        tls_url=f"https://127.0.0.1:{tls_port}" if tls_port else None,
        ca_file=ca_file,
    )
