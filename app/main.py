"""The web application factory. The web process never imports torch."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import api_error_handler, http_error_handler, validation_error_handler
from app.routes import ROUTERS
from app.security import install_access_control
from app.templating import STATIC_DIR
from core.errors import ApiError
from core.services.sweeper import sweeper_lifespan


def create_app() -> FastAPI:
    app = FastAPI(title="AV-LoRA Studio", version="1", summary="Train and verify LTX-2.3 Audio-Video LoRAs",
                  lifespan=sweeper_lifespan)  # marks dead jobs interrupted, re-sends lost ones
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
    install_access_control(app)  # login, session cookie, CSRF, bearer token (app/security.py)
    return app
