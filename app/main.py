"""The web application factory. The web process never imports torch."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from app.errors import (
    UNSTORABLE_VALUE_ERRORS,
    api_error_handler,
    http_error_handler,
    unstorable_value_handler,
    validation_error_handler,
)
from app.input_guard import InputGuardMiddleware
from app.routes import ROUTERS
from app.security import install_access_control
from app.templating import STATIC_DIR
from core.errors import ApiError
from core.services.sweeper import sweeper_lifespan


def _install_api_docs(app: FastAPI) -> None:
    """``/docs`` with the Swagger UI vendored in static/vendor (scripts/vendor_swagger.sh), not
    FastAPI's CDN default, so the "API" link works on a studio without internet. (ReDoc is off:
    it exists only on a CDN.)"""
    js, css = (next((STATIC_DIR / "vendor").glob(pattern)).name
               for pattern in ("swagger-ui-bundle-*.js", "swagger-ui-[0-9]*.css"))

    @app.get("/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} · API",
                                   swagger_js_url=f"{root}/static/vendor/{js}",
                                   swagger_css_url=f"{root}/static/vendor/{css}",
                                   swagger_favicon_url=f"{root}/static/favicon.svg")


def create_app() -> FastAPI:
    app = FastAPI(title="AV-LoRA Studio", version="1", summary="Train and verify LTX-2.3 Audio-Video LoRAs",
                  lifespan=sweeper_lifespan,  # marks dead jobs interrupted, re-sends lost ones
                  docs_url=None, redoc_url=None)  # /docs: _install_api_docs (vendored assets)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for refused in UNSTORABLE_VALUE_ERRORS:  # a value the database refused: 422, not 500
        app.add_exception_handler(refused, unstorable_value_handler)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_api_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(InputGuardMiddleware)  # text and numbers the database cannot store: 4xx (app/input_guard.py)
    install_access_control(app)  # login, session cookie, CSRF, bearer token (app/security.py)
    return app
