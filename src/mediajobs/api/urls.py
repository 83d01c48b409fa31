"""The submit-time check of an import or webhook URL, as the routes answer it.

What can never be fetched (bad scheme or host name, a non-public address, a refused port) is a 422 naming
`url`. A name that does not resolve, or not within `RESOLVE_TIMEOUT_S` (egress/urlcheck), is accepted: the
job (each import, each delivery) resolves it again through the egress guard, which is the real defence; the
answer says so in its `Mediajobs-Url-Check` header.
"""

from __future__ import annotations

from mediajobs.api.problems import invalid
from mediajobs.config import Settings
from mediajobs.egress.policy import Policy
from mediajobs.egress.urlcheck import check_url
from mediajobs.errors import ForbiddenAddress, InvalidUrl, SourceUnreachable, TransientError

HEADER = "Mediajobs-Url-Check"
DOCUMENTED = {
    HEADER: {
        "description": "present when the URL's host name could not be checked at once (it did not resolve, "
        "or not within 2 s): `deferred; <what happened>; <who checks it later>`",
        "schema": {"type": "string"},
    }
}


def checked_url(url: str, settings: Settings, *, later: str) -> tuple[str, dict[str, str]]:
    """`url` as it will be used, and the headers to answer with; raises the 422 for a URL never fetchable."""
    try:
        return check_url(url, policy=Policy.from_settings(settings)), {}
    except (InvalidUrl, ForbiddenAddress) as exc:
        raise invalid(["url"], str(exc)) from exc
    except (SourceUnreachable, TransientError) as exc:
        return url.strip(), {HEADER: f"deferred; {exc.message}; {later}"}
