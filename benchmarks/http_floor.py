"""The baseline for benchmarks/statestore.py: the same HTTP stack (uvicorn, h11, Starlette) answering a
constant, so the state store's figure can be read against what the stack alone allows on this machine."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def constant(request: object) -> PlainTextResponse:
    return PlainTextResponse("v")


app = Starlette(routes=[Route("/{path:path}", constant, methods=["GET", "PUT"])])
