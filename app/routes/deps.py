"""Dependency aliases shared by page and API routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from core.db import get_session

SessionDep = Annotated[Session, Depends(get_session)]
