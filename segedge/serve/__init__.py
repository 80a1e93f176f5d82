"""`segedge serve`: an HTTP API and a web page over a Segmenter (needs the [serve] extra: FastAPI, uvicorn).

Imported only by `segedge serve`, so the base install runs without FastAPI."""
