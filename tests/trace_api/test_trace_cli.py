"""``skillmine trace show`` prints the run's tree with durations, agents, status and files; bad ids exit 2."""

import argparse
import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from capture.read.trace_api import cli

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="skillmine")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_show_prints_the_event_tree(sqlite_url, writer, capsys):
    assert run_cli("trace", "show", "run-1", "--url", sqlite_url) == 0
    assert capsys.readouterr().out.splitlines() == [
        "run run-1  session sess-a  mode one_shot  status failed  events 6  agents engineer, executor",
        "node step_1  agent  engineer  completed",
        "  agent_call/complete  engineer  5.00 s  completed",
        "    llm_call  engineer  1.00 s  completed",
        "    tool_call  engineer  1.00 s  completed",
        "      file_gen  engineer  completed  -> plots/fig.png (plot)",
        "node step_2  agent  executor  failed",
        "  agent_call/complete  executor  3.00 s  completed",
        ("    code_exec/error  executor  2.00 s  FAILED: ZeroDivisionError: division by zero"
         "  -> codebase/analysis.py (code)"),
    ]


def test_show_json_nests_events_under_nodes(sqlite_url, writer, capsys):
    assert run_cli("trace", "show", "run-1", "--url", sqlite_url, "--json") == 0
    tree = json.loads(capsys.readouterr().out)["tree"]
    assert [g["node"]["id"] for g in tree] == ["n-eng", "n-exe"]
    e1 = tree[0]["flow"][0]
    assert (e1["id"], [c["id"] for c in e1["children"]], e1["children"][1]["children"][0]["id"]) == (
        "e1", ["e2", "e3"], "e4")


def test_show_names_a_missing_run_or_session(sqlite_url, writer, capsys):
    assert run_cli("trace", "show", "nope", "--url", sqlite_url) == 2
    assert capsys.readouterr().err == "skillmine trace show: run 'nope' not found\n"
    assert run_cli("trace", "show", "run-1", "--url", sqlite_url, "--session-id", "sess-b") == 2
    assert capsys.readouterr().err == "skillmine trace show: run 'run-1' not found in session 'sess-b'\n"


def test_show_on_an_unmigrated_store_explains(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run_cli("trace", "show", "run-1", "--url", url) == 2
    assert "run `skillmine db upgrade`" in capsys.readouterr().err


SERVE_SCRIPT = ("import argparse, sys\nfrom capture.read.trace_api import cli\n"
                "parser = argparse.ArgumentParser()\ncli.register(parser.add_subparsers())\n"
                "args = parser.parse_args(sys.argv[1:])\nsys.exit(args.handler(args))\n")


def test_serve_answers_until_interrupted(sqlite_url, writer):
    proc = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, "trace", "serve", "--port", "0", "--url", sqlite_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/", line)[1]
        with urllib.request.urlopen(url + "/api/runs", timeout=10) as response:
            assert [r["id"] for r in json.loads(response.read())["runs"]] == ["run-1", "run-2"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_names_a_busy_port(sqlite_url, writer, server, capsys):
    port = server.server_address[1]
    assert run_cli("trace", "serve", "--port", str(port), "--url", sqlite_url) == 2
    assert capsys.readouterr().err.startswith(f"skillmine trace serve: cannot listen on 127.0.0.1:{port}: ")


def test_serve_without_the_web_stack_names_the_extra(sqlite_url, writer):
    script = ("import sys\nsys.modules['uvicorn'] = None  # as if skillmine[trace] were not installed\n"
              "from skillmine.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", script, "trace", "serve", "--port", "0", "--url", sqlite_url],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1
    assert "uvicorn is not installed (fix: pip install 'skillmine[trace]')" in done.stderr
