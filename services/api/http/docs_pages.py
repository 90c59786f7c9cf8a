"""/docs (Swagger UI) and /redoc (ReDoc), with their scripts and styles served by the api (docs_assets/, vendored
from npm, see VENDORED.md there) instead of CDNs, so both pages work offline and behind strict firewalls."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.openapi.plugins import OpenAPIRenderPlugin, RedocRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router

ASSETS_DIR = Path(__file__).parent / "docs_assets"
ASSETS_PATH = "/docs/assets"
_FAVICON = f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">'


def docs_pages() -> list[OpenAPIRenderPlugin]:
    return [
        SwaggerRenderPlugin(
            path="/docs",
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=_FAVICON,
        ),
        RedocRenderPlugin(
            path="/redoc", js_url=f"{ASSETS_PATH}/redoc.standalone.js", google_fonts=False, favicon=_FAVICON
        ),
    ]


def docs_assets() -> Router:
    return create_static_files_router(path=ASSETS_PATH, directories=[ASSETS_DIR], include_in_schema=False)
