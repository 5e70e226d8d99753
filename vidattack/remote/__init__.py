"""Deployed models as attack targets: an HTTP service or a command, known only by its answers.

- `options`: `RemoteOptions`, how to talk to a target (headers from the environment, concurrency, rate,
  retries, the query log);
- `transport`: one request to an HTTP or command target (retryable and fatal failures);
- `answers`: an answer read as untrusted JSON (full scores, top-k, label only);
- `candidate`: a candidate video's content hash and lossless MP4 bytes;
- `querylog`: the append-only, synced log of every query and answer (`--resume` replays it);
- `client`: cache, log, retries, concurrency, rate limit and the traffic counts;
- `view`: `RemoteView`, the target as a `ModelView` that the pipeline and attacks use unchanged;
- `serve`: a local service over any loadable model (`vidattack serve`).
"""
