"""``skillmine export otlp`` and ``skillmine serve otlp``: captured runs to an OpenTelemetry backend, and an OTLP/HTTP
receiver that writes traces into the capture store (``skillmine import otlp FILE`` is an importer kind).

Both need the ``skillmine[otel]`` extra; they import it only when they run.
"""

import argparse
import os
import sys

from skillmine.console import fail

TOKEN_ENV = "SKILLMINE_TRACE_TOKEN"  # the trace server's token rule, reused


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount ``export otlp`` and ``serve otlp``."""
    export = subparsers.add_parser("export", help="send captured runs elsewhere")
    kinds = export.add_subparsers(dest="export_kind", required=True, metavar="KIND")
    otlp = kinds.add_parser("otlp", help="captured runs as OTLP GenAI spans to an OpenTelemetry endpoint")
    which = otlp.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", action="append", metavar="ID", help="a run to export (repeatable)")
    which.add_argument("--since", type=int, metavar="SEQ", help="every event stored after this sequence number")
    target = otlp.add_mutually_exclusive_group(required=True)
    target.add_argument("--endpoint", help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces")
    target.add_argument("--file", help="append OTLP/JSON lines (the Collector file exporter's format) here")
    otlp.add_argument("--protocol", choices=("http/protobuf", "http/json"), default="http/protobuf")
    otlp.add_argument("--header", action="append", default=[], metavar="NAME=VALUE", help="HTTP header to send")
    otlp.add_argument("--content", action="store_true",
                      help="include message content (inputs, outputs; redacted first); off by default")
    otlp.add_argument("--url", help="database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)")
    otlp.set_defaults(handler=_export)

    serve = subparsers.add_parser("serve", help="receive data into the capture store")
    serve_kinds = serve.add_subparsers(dest="serve_kind", required=True, metavar="KIND")
    receiver = serve_kinds.add_parser("otlp", help="OTLP/HTTP receiver: POST /v1/traces (protobuf or JSON)")
    receiver.add_argument("--host", default="127.0.0.1",
                          help=f"address to bind; anything but loopback requires ${TOKEN_ENV}")
    receiver.add_argument("--port", type=int, default=4318, help="port (default 4318, OTLP/HTTP's; 0 picks one)")
    receiver.add_argument("--session", help="put every received run into this session")
    receiver.add_argument("--url", help="database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)")
    receiver.add_argument("--verbose", action="store_true", help="log every request")
    receiver.set_defaults(handler=_serve)


def _export(args: argparse.Namespace) -> int:
    import json

    from capture.read.otlp_export import SpanBuilder, load_runs, send, to_otlp_json
    from capture.store.db import StoreError, make_engine

    headers = dict(h.split("=", 1) for h in args.header if "=" in h)
    builder = SpanBuilder(content=args.content)
    runs = spans = 0
    try:
        engine = make_engine(args.url)
        try:
            for rows in load_runs(engine, run_ids=args.run or (), since_seq=args.since):
                batch = builder.spans(rows)
                if args.file:
                    with open(args.file, "a", encoding="utf-8") as out:
                        out.write(json.dumps(to_otlp_json(batch)) + "\n")
                else:
                    send(batch, args.endpoint, protocol=args.protocol, headers=headers)
                runs, spans = runs + 1, spans + len(batch)
        finally:
            engine.dispose()
    except (LookupError, ConnectionError, StoreError, OSError) as exc:
        fail("export otlp", str(exc))
        return 2
    print(f"exported {runs} runs as {spans} spans to {args.file or args.endpoint}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from capture.importers.otlp_server import OtlpReceiver, bind, serve
    from capture.read.trace_api.server import ServerRefused, check_binding
    from capture.store.capture_store import CaptureStore
    from capture.store.db import StoreError

    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_binding(args.host, token)
        store = CaptureStore.open(args.url)
    except (ServerRefused, StoreError) as exc:
        fail("serve otlp", str(exc))
        return 2
    try:
        try:
            sock = bind(args.host, args.port)
        except OSError as exc:
            fail("serve otlp", f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
            return 2
        host, port = sock.getsockname()[:2]
        auth = "token required" if token else "no token: loopback only"
        print(f"OTLP/HTTP receiver at http://{host}:{port}/v1/traces ({auth}; Ctrl-C or SIGTERM stops)", flush=True)
        receiver = OtlpReceiver(store, token=token, session=args.session)
        serve(receiver, sock, verbose=args.verbose)
        unmapped = receiver.ingestor.counts.unmapped
        print(f"stopped: {receiver.stats.requests} requests, {receiver.stats.spans} spans acknowledged"
              + ("; not mapped: " + ", ".join(f"{k} ×{n}" for k, n in sorted(unmapped.items())) if unmapped else ""),
              file=sys.stderr, flush=True)
    finally:
        store.close()
    return 0
