"""The size bound of a list page, one for every list of the API and the UI.

docs/api.md ("Lists page with `skip` and `limit` (at most 500)") states it; a larger `limit` is a
422 naming `limit`.
"""

from __future__ import annotations

# Rows one list page may hold (`limit`); the API's `Limit` query type and the services check it.
MAX_PAGE = 500
