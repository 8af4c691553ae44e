"""``/ui/check``: the service's own parser and checker on a query, for as-you-type marking.

Answers JSON: ``{"ok": true, "columns": [...]}`` with the output columns' name, datatype and
unit, or ``{"ok": false, "error": {"message", "line", "column", "hint", "code"}}``. Nothing is
run. A missing or oversized query is a 400 naming the parameter, in the same JSON shape.
"""
from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from diavo.server.adql.errors import ADQLError

#: Longer texts are refused: checking runs on every keystroke (debounced) and must stay cheap.
MAX_QUERY_CHARS = 100_000


async def check(request: Request) -> JSONResponse:
    if request.method == "POST":
        form = await request.form()
        query = form.get("QUERY")
    else:
        query = request.query_params.get("QUERY")
    if not isinstance(query, str) or not query.strip():
        return _bad("QUERY: the ADQL text to check is required")
    if len(query) > MAX_QUERY_CHARS:
        return _bad(f"QUERY: longer than {MAX_QUERY_CHARS} characters")
    service = request.app.state.ctx.queries

    def run() -> dict:
        try:
            compiled = service.translate(query)
        except ADQLError as exc:
            return {"ok": False, "error": {"message": exc.message, "line": exc.line, "column": exc.column,
                                           "hint": exc.hint, "code": exc.code}}
        columns = [{k: c.get(k) or None for k in ("name", "datatype", "unit", "ucd")} for c in compiled.columns]
        return {"ok": True, "columns": columns}

    return JSONResponse(await run_in_threadpool(run))


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": {"message": message, "line": 0, "column": 0, "hint": None,
                                                "code": "parameter"}}, status_code=400)
