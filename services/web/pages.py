"""Serve the playground, the dashboard and their bundled assets from the package.

Only files that exist under ``static/`` when the routes are made are served (a
table, not a path joined from the URL: nothing outside that folder can be asked
for). Asset names carry a content hash, so they are cached for a year; the two
pages are revalidated on every load. Text assets are gzipped for clients that
accept it, once each (kept in memory: the whole bundle is about 1 MiB, 0.4 gzipped).
"""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
import re
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

STATIC = Path(__file__).with_name("static")
PAGES = {"/": "index.html", "/dashboard": "dashboard.html"}
_HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z]+$")
_COMPRESSIBLE = (".js", ".css", ".json", ".txt", ".map")
# Scripts and connections only from this origin; styles also inline, because the
# editor (CodeMirror) installs its own style sheets at run time.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"}


@dataclass(frozen=True)
class Asset:
    """One servable file: where it is and its media type."""

    path: Path
    media_type: str


def _media_type(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind in (
        "application/javascript", "application/json") else kind


def asset_table(root: Path = STATIC) -> dict[str, Asset]:
    """URL path below /static/ -> the file it names (the pages are served at their own URLs)."""
    table = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name not in PAGES.values():
                table[path.relative_to(root).as_posix()] = Asset(path, _media_type(path))
    return table


def _accepts_gzip(request: Request) -> bool:
    return any(part.split(";")[0].strip() == "gzip"
               for part in request.headers.get("accept-encoding", "").split(","))


class Pages:
    """Handlers over one static folder."""

    def __init__(self, root: Path = STATIC) -> None:
        self.root = root
        self.assets = asset_table(root)
        self._scanned = time.monotonic()
        self._gzipped: dict[Path, bytes] = {}

    async def page(self, request: Request) -> Response:
        path = self.root / PAGES[request.url.path]
        if not path.is_file():
            raise HTTPException(503, "the web UI is not built: run ./deploy.sh (it runs "
                                     "services/web/build.mjs), or reinstall the package")
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["path"]
        asset = self.assets.get(name)
        if asset is None and time.monotonic() - self._scanned > 1.0:
            # A rebuilt bundle (new hashed names) is served without a restart.
            self.assets, self._scanned = asset_table(self.root), time.monotonic()
            asset = self.assets.get(name)
        if asset is None:
            raise HTTPException(404, "no such asset")
        headers = {"X-Content-Type-Options": "nosniff", "Vary": "Accept-Encoding",
                   "Cache-Control": "public, max-age=31536000, immutable"
                   if _HASHED.search(asset.path.name) else "no-cache"}
        if asset.path.suffix in _COMPRESSIBLE and _accepts_gzip(request):
            body = self._gzipped.get(asset.path)
            if body is None:  # once per file: off the event loop (the largest takes ~10 ms)
                body = await asyncio.to_thread(_gzip, asset.path)
                self._gzipped[asset.path] = body
            headers["Content-Encoding"] = "gzip"
            return Response(body, media_type=asset.media_type, headers=headers)
        return FileResponse(asset.path, media_type=asset.media_type, headers=headers)


def _gzip(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)


def routes(root: Path = STATIC) -> list[BaseRoute]:
    """``/``, ``/dashboard`` and ``/static/{path}``."""
    pages = Pages(root)
    return [*(Route(url, pages.page, methods=["GET", "HEAD"]) for url in PAGES),
            Route("/static/{path:path}", pages.asset, methods=["GET", "HEAD"])]
