"""The registry server: a FastAPI app over any store URL, with API keys and roles, promotion
requests with approvals, an events feed, webhooks and a server-rendered web UI.

`from promptgate.server import create_app` - this package imports FastAPI; the library and the
SDK never import it.
"""

from .app import create_app
from .state import ServerSettings

__all__ = ["ServerSettings", "create_app"]
