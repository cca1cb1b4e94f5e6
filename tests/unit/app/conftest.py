"""The web tests' fixtures (an app on a migrated SQLite studio, generated media), for app/ tests too."""

from tests.unit.web.conftest import api, browser_client, media  # noqa: F401  (fixtures, found by name)
