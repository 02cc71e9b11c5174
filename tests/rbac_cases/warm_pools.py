"""Matrix case for the warm container pools (admin only)."""

from __future__ import annotations

from tests.rbac_cases import Case, allow

CASES = [Case("GET", "/api/v1/warm-pools", allow("admin"))]
