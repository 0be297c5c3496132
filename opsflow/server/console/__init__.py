"""The web console of ``opsflow serve``: server-rendered pages over the store and the service's API.

:mod:`.routes` exposes ``router`` (a FastAPI ``APIRouter`` the service mounts at ``/``); :mod:`.web`
holds the session, CSRF and template plumbing; :mod:`.views` shapes store rows for the pages (pure);
:mod:`.queries` reads what the pages need from the store, a page at a time. The pages use Jinja2
templates (autoescape on) in ``templates/`` and one CSS and one vanilla JS file in ``static/``, served
by the router: no CDN, no build step. JavaScript only makes pages live (a run's stream) and sends the
buttons' requests to the API with the session's CSRF token in ``X-CSRF-Token``.
"""
