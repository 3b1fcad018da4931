"""The ops console's files, served by the ops API under /console/, and the security headers
of every API response.

The files (ari_app/ops/console/: HTML, JS modules, CSS, vendored uPlot) ship in the
package; nothing is loaded from the internet. They hold no data, so they are served without
the token: the page asks for the token and sends it as a bearer header on every data
request, which stay behind the API's token check. Only the files found at start are served
(a fixed table: no path from a request ever reaches the file system).

The Content-Security-Policy allows scripts, styles and connections to this origin only,
no inline script or style, no framing, no forms posting elsewhere.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

ASSETS = Path(__file__).with_name("console")
PREFIX = "/console/"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
         ".png": "image/png", ".txt": "text/plain"}
_TEXT = (".html", ".js", ".css", ".svg", ".txt")
_ASSETS_KEY = web.AppKey("console_assets", dict)


def is_console_file(path: str) -> bool:
    """Paths the console's files are served from (no token needed: they hold no data)."""
    return path == PREFIX.rstrip("/") or path.startswith(PREFIX)


def load_assets(folder: Path = ASSETS) -> dict[str, tuple[bytes, str]]:
    """{"js/main.js": (bytes, content type)} of every servable file under `folder`."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            found[path.relative_to(folder).as_posix()] = (path.read_bytes(), TYPES[path.suffix])
    return found


async def _file(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name") or "index.html"
    found = request.app[_ASSETS_KEY].get(name)
    if found is None:
        return web.json_response({"error": "Not Found"}, status=404)
    body, content_type = found
    return web.Response(body=body, content_type=content_type,
                        charset="utf-8" if name.endswith(_TEXT) else None,
                        headers={"Cache-Control": "no-cache"})


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(PREFIX)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")  # data answers are not kept


def add_console_files(app: web.Application, folder: Path = ASSETS) -> None:
    app[_ASSETS_KEY] = load_assets(folder)
    app.router.add_get(PREFIX.rstrip("/"), _to_console)
    app.router.add_get(PREFIX + "{name:.*}", _file)


def add_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(_security_headers)
