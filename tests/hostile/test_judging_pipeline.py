"""Checkers, checker programs, interactors and scored tests through the whole pipeline.

HTTP -> Kafka -> worker -> sandbox, on both backends (bwrap always; docker when an
engine and the python and c images are there), hostile judge programs included:
each hostile case also checks that nothing of the run outlived it and that the
next ordinary request still succeeds (docs/judging.md).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from runstream.schemas.codec import validate_result_doc

from tests.e2e.test_events import collect
from tests.hostile.test_pipeline_hostile import _settled
from tests.system import TEAM_REPLY_PARTITION, System, team_clients

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]

BACKENDS = [pytest.param("bwrap", id="bwrap"),
            pytest.param("docker", id="docker", marks=pytest.mark.docker)]

ECHO = "import sys\nsys.stdout.write(sys.stdin.read())\n"  # its output is its test's stdin


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def running(backend: str, request: pytest.FixtureRequest) -> System:
    system: System = request.getfixturevalue("system" if backend == "bwrap" else
                                             "docker_system")
    return system


def post(system: System, doc: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=system.url, timeout=180) as c:
        r = c.post("/v1/executions", json=doc)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    validate_result_doc(result)
    return result


def statuses(doc: dict[str, Any]) -> list[str]:
    return [t["status"] for t in doc["tests"]]


# -- standard checkers ------------------------------------------------------------

# kind -> (output, answer) accepted, (output, answer) rejected
STANDARD = {
    "exact": (("a b\n", "a b\n"), ("a b", "a b\n")),
    "lines": (("a b  \n\n", "a b"), ("a  b", "a b")),
    "tokens": (("a\n b\t c", "a b c\n"), ("a b", "a b c")),
    "floats": (("3.1415926 x\n", "3.14159265 x"), ("3.1416 x", "3.14159265 x")),
    "unordered": (("b\na\nc\n", "a\nb\nc"), ("a\na\n", "a\nb\n")),
    "case_insensitive": (("YES\n", "yes"), ("YES\n", "no")),
}


@pytest.mark.parametrize("kind", sorted(STANDARD))
def test_standard_checker(running: System, kind: str) -> None:
    good, bad = STANDARD[kind]
    checker: Any = {"kind": kind, "abs_error": 1e-6} if kind == "floats" else kind
    doc = post(running, {"language": "python", "source": ECHO, "checker": checker, "tests": [
        {"stdin": good[0], "expected_output": good[1]},
        {"stdin": bad[0], "expected_output": bad[1]}]})
    assert statuses(doc) == ["ok", "wrong_answer"], doc
    assert doc["status"] == "wrong_answer"
    assert doc["tests"][1]["comment"], doc  # where it differs


def test_a_test_overrides_the_request_checker(running: System) -> None:
    relative = {"kind": "floats", "rel_error": 1e-4}  # 1000.05 is within 1e-4 of 1000
    doc = post(running, {"language": "python", "source": ECHO, "checker": "exact", "tests": [
        {"stdin": "1  2", "expected_output": "1 2"},
        {"stdin": "1  2", "expected_output": "1 2", "checker": "tokens"},
        {"stdin": "1000.05", "expected_output": "1000", "checker": relative},
        {"stdin": "1000.5", "expected_output": "1000", "checker": relative},
        {"stdin": "0.0005", "expected_output": "0", "checker": relative}]})
    assert statuses(doc) == ["wrong_answer", "ok", "ok", "wrong_answer", "wrong_answer"], doc
    assert doc["tests"][3]["comment"] == ("token 1: expected 1000, got 1000.5 (difference "
                                          "0.5, allowed 0 absolute or 0.0001 relative)"), doc


def test_floats_accepts_within_either_error(running: System) -> None:
    checker = {"kind": "floats", "abs_error": 1e-3, "rel_error": 1e-6}
    doc = post(running, {"language": "python", "source": ECHO, "checker": checker, "tests": [
        {"stdin": "0.0009", "expected_output": "0"},  # absolutely close
        {"stdin": "1000000.9", "expected_output": "1000000"},  # relatively close
        {"stdin": "1000002", "expected_output": "1000000"}]})  # neither
    assert statuses(doc) == ["ok", "ok", "wrong_answer"], doc


# -- checker programs -------------------------------------------------------------

# "Print two numbers whose sum is 2n+1": many answers are right.
ANY_PAIR = "n = int(input())\nprint(n, n + 1)\n"
PAIR_CHECKER_PY = """import sys
inp, out, ans = sys.argv[1:4]
n = int(open(inp).read())
words = open(out).read().split()
if len(words) != 2:
    print("expected two numbers, got", len(words), file=sys.stderr); sys.exit(2)
a, b = map(int, words)
if a + b == 2 * n + 1:
    print("ok", a, "+", b, file=sys.stderr); sys.exit(0)
if abs(a + b - (2 * n + 1)) == 1:
    print("0.5"); print("off by one", file=sys.stderr); sys.exit(7)
print("sum is", a + b, file=sys.stderr); sys.exit(1)
"""


def test_a_checker_program_judges_any_valid_answer(running: System) -> None:
    doc = post(running, {
        "language": "python",
        "source": "n = int(input())\nprint(*{3: [0, 7], 4: [4, 4], 5: [1], 6: [6, 7]}[n])\n",
        "checker": {"language": "python", "source": PAIR_CHECKER_PY, "limits": {"wall_ms": 5000}},
        "tests": [{"stdin": "3", "points": 1}, {"stdin": "4", "points": 1},
                  {"stdin": "5", "points": 1}, {"stdin": "6", "points": 2}]})
    assert statuses(doc) == ["ok", "partial", "presentation_error", "ok"], doc
    assert [t["comment"] for t in doc["tests"]] == [
        "ok 0 + 7", "off by one", "expected two numbers, got 1", "ok 6 + 7"]
    assert [t["score"] for t in doc["tests"]] == [1, 0.5, 0, 2]
    assert (doc["score"], doc["max_score"]) == (3.5, 5)
    assert doc["tests"][0]["judge"]["exit_code"] == 0 and doc["status"] == "partial"


PAIR_CHECKER_C = """/* CACHE_TAG */
#include <stdio.h>
int main(int argc, char **argv) {
    long n, a, b;
    FILE *in = fopen(argv[1], "r"), *out = fopen(argv[2], "r");
    if (!in || !out || fscanf(in, "%ld", &n) != 1) { fprintf(stderr, "bad files"); return 3; }
    if (fscanf(out, "%ld %ld", &a, &b) != 2) { fprintf(stderr, "no pair"); return 2; }
    if (a + b != 2 * n + 1) { fprintf(stderr, "sum %ld", a + b); return 1; }
    return 0;
}
"""


def test_a_compiled_checker_compiles_once_per_worker(running: System) -> None:
    checker = PAIR_CHECKER_C.replace("CACHE_TAG", uuid.uuid4().hex)
    seen: Counter[tuple[str, str]] = Counter()
    for n in range(4):
        doc = post(running, {"language": "python", "source": ANY_PAIR, "checker": {
            "language": "c", "source": checker}, "tests": [{"stdin": str(n)}]})
        assert statuses(doc) == ["ok"], doc
        seen[(doc["worker"], doc["judge_compile"]["cache"])] += 1
    workers = {w for w, _ in seen}
    assert all(seen[(w, "miss")] <= 1 for w in workers), seen
    assert sum(seen[(w, "hit")] for w in workers) >= 4 - len(workers), seen


def test_a_checker_that_does_not_compile_is_a_judge_error(running: System) -> None:
    doc = post(running, {"language": "python", "source": ANY_PAIR, "checker": {
        "language": "c", "source": "int main( {"}, "tests": [{"stdin": "1"}]})
    assert doc["status"] == "internal_error", doc
    assert doc["message"] == "judge error: the checker did not compile"
    assert doc["judge_compile"]["exit_code"] != 0 and doc["tests"] == []


def test_a_checker_in_a_language_not_served_is_refused(running: System) -> None:
    doc = post(running, {"language": "python", "source": ANY_PAIR, "checker": {
        "language": "no-such-language", "source": "x"}, "tests": [{"stdin": "1"}]})
    assert doc["status"] == "rejected", doc
    assert doc["message"].startswith("checker: language 'no-such-language' is not supported")


# -- scored tests, groups, stopping -----------------------------------------------

def test_groups_score_only_when_all_their_tests_pass(running: System) -> None:
    doc = post(running, {"language": "python", "source": ECHO, "tests": [
        {"stdin": "1", "expected_output": "1", "points": 10},
        {"stdin": "2", "expected_output": "2", "points": 20, "group": "small"},
        {"stdin": "3", "expected_output": "x", "points": 30, "group": "small"},
        {"stdin": "4", "expected_output": "4", "points": 40, "group": "large"}]})
    assert statuses(doc) == ["ok", "ok", "wrong_answer", "ok"]
    assert [t["score"] for t in doc["tests"]] == [10, 20, 0, 40]
    assert (doc["score"], doc["max_score"]) == (50, 100)
    assert doc["groups"] == [{"name": "small", "score": 0, "max_score": 50},
                             {"name": "large", "score": 40, "max_score": 40}]


def test_stop_on_failure_skips_the_rest(running: System) -> None:
    doc = post(running, {"language": "python", "source": ECHO, "stop_on_failure": True,
                         "tests": [{"stdin": "1", "expected_output": "1", "points": 1},
                                   {"stdin": "2", "expected_output": "x", "points": 1},
                                   {"stdin": "3", "expected_output": "3", "points": 1}]})
    assert statuses(doc) == ["ok", "wrong_answer", "skipped"], doc
    assert doc["status"] == "wrong_answer" and doc["tests"][2]["run"]["exit_code"] is None
    assert (doc["score"], doc["max_score"]) == (1, 3)


# -- interactors ------------------------------------------------------------------

GUESSER = """lo, hi = 1, 100
while True:
    m = (lo + hi) // 2
    print(m, flush=True)
    r = input()
    if r == "=":
        break
    if r == "<":
        hi = m - 1
    else:
        lo = m + 1
"""
INTERACTOR = """import sys
x = int(open(sys.argv[1]).read())
for q in range(1, 8):
    g = int(input())
    if g == x:
        print("=", flush=True)
        print("found in", q, "guesses", file=sys.stderr)
        sys.exit(0)
    print("<" if x < g else ">", flush=True)
print("too many guesses", file=sys.stderr)
sys.exit(1)
"""


def test_an_interactor_talks_with_the_program(running: System) -> None:
    doc = post(running, {"language": "python", "source": GUESSER,
                         "interactor": {"language": "python", "source": INTERACTOR},
                         "tests": [{"stdin": "37", "points": 1}, {"stdin": "100", "points": 1}]})
    assert statuses(doc) == ["ok", "ok"], doc
    assert [t["comment"] for t in doc["tests"]] == ["found in 3 guesses", "found in 7 guesses"]
    assert doc["tests"][0]["run"]["stdout"] == "50\n25\n37\n"
    assert doc["tests"][0]["judge"]["stdout"] == "<\n>\n=\n"
    assert doc["score"] == 2


def test_an_interactor_rejects_a_wrong_strategy(running: System) -> None:
    linear = "i = 1\nwhile True:\n    print(i, flush=True)\n    if input() == '=': break\n" \
             "    i += 1\n"
    doc = post(running, {"language": "python", "source": linear,
                         "interactor": {"language": "python", "source": INTERACTOR},
                         "tests": [{"stdin": "5"}, {"stdin": "90"}]})
    assert statuses(doc) == ["ok", "wrong_answer"], doc
    assert doc["tests"][1]["comment"] == "too many guesses"


def test_a_c_interactor_compiles_once_per_worker(running: System) -> None:
    interactor = f"/* {uuid.uuid4().hex} */\n" + """#include <stdio.h>
int main(int argc, char **argv) {
    int x, g, q; FILE *in = fopen(argv[1], "r");
    if (!in || fscanf(in, "%d", &x) != 1) return 3;
    for (q = 1; q <= 7; q++) {
        if (scanf("%d", &g) != 1) { fprintf(stderr, "no guess"); return 1; }
        if (g == x) { printf("=\\n"); fflush(stdout); return 0; }
        printf(x < g ? "<\\n" : ">\\n"); fflush(stdout);
    }
    return 1;
}
"""
    seen: Counter[tuple[str, str]] = Counter()
    for secret in (64, 3, 99):
        doc = post(running, {"language": "python", "source": GUESSER,
                             "interactor": {"language": "c", "source": interactor},
                             "tests": [{"stdin": str(secret)}]})
        assert statuses(doc) == ["ok"], doc
        assert doc["judge_compile"]["exit_code"] == 0
        seen[(doc["worker"], doc["judge_compile"]["cache"])] += 1
    workers = {w for w, _ in seen}
    assert all(seen[(w, "miss")] <= 1 for w in workers), seen
    assert sum(seen[(w, "hit")] for w in workers) >= 3 - len(workers), seen


# -- hostile checkers and interactors ---------------------------------------------

SECRET = uuid.uuid4().hex
# The submission leaves a secret in its workspace and in /tmp; the checker looks for it
# everywhere it can reach (its own workspace, /tmp, /proc of any process).
PLANTER = (f"open('secret.txt', 'w').write('{SECRET}')\n"
           f"open('/tmp/secret.txt', 'w').write('{SECRET}')\nprint(1)\n")
SNOOPER = f"""import glob, os, stat, sys
want = "{SECRET[::-1]}"[::-1].encode()  # not the secret's bytes: its own source is found
found = []
places = glob.glob("/proc/[0-9]*/cwd") + glob.glob("/proc/[0-9]*/root/box")
for top in ("/box", "/tmp", "/run", "/var/tmp", "/dev/shm", *places):
    for root, dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue
                with open(path, "rb") as f:
                    if want in f.read(1 << 16):
                        found.append(path)
            except OSError:
                pass
print("found", found, file=sys.stderr)
sys.exit(1 if found else 0)
"""
HOSTILE_CHECKERS = {
    # a daemon that would outlive it, then an accepted verdict
    "forks a daemon": ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n"
                       "    time.sleep(1000)\nsys.exit(0)\n", "ok", None),
    "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                  "        pass\n", "internal_error", "judge error: the checker"),
    "loops": ("while True: pass\n", "internal_error",
              "judge error: the checker exceeded its"),  # CPU or wall: a busy host
    "lies with an unknown exit code": ("import sys\nsys.exit(42)\n", "internal_error",
                                       "judge error: the checker exited with 42"),
    "reads other runs' files": (SNOOPER, "ok", None),
    "crashes": ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "internal_error",
                "judge error: the checker was killed by SIGSEGV"),
    "writes nonsense": ("import sys\nprint('lots of points')\nsys.exit(7)\n", "internal_error",
                        "judge error: the checker gave partial points (exit code 7) without"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CHECKERS))
def test_hostile_checker(running: System, backend: str, name: str) -> None:
    source, status, comment = HOSTILE_CHECKERS[name]
    doc = post(running, {"language": "python", "source": PLANTER, "checker": {
        "language": "python", "source": source,
        "limits": {"wall_ms": 3000, "cpu_ms": 1000, "processes": 16}},
        "tests": [{"stdin": "", "expected_output": "1", "points": 1}]})
    test = doc["tests"][0]
    assert statuses(doc) == [status], test.get("comment")
    assert test["run"]["exit_code"] == 0  # the submission ran as ever
    if comment is not None:
        assert test["comment"].startswith(comment), test
        assert test["score"] == 0 and doc["status"] == "internal_error"
    assert not _settled(running, backend), "processes of the checker outlived it"
    assert post(running, {"language": "python", "source": "print(6*7)"})["status"] == "ok"


def test_an_interactor_that_never_answers_is_the_programs_time_limit(
        running: System, backend: str) -> None:
    doc = post(running, {"language": "python", "source": GUESSER, "limits": {"wall_ms": 2000},
                         "interactor": {"language": "python", "limits": {"wall_ms": 1000},
                                        "source": "import time\ntime.sleep(1000)\n"},
                         "tests": [{"stdin": "5"}]})
    assert statuses(doc) == ["time_limit_exceeded"], doc
    run = doc["tests"][0]["run"]
    assert run["time_limit"] == "wall" and run["cpu_ms"] < 1000  # waiting is not CPU
    assert not _settled(running, backend), "processes of the interaction outlived it"


def test_an_interactor_cannot_reach_the_programs_files(running: System) -> None:
    # The program plants its secret, then waits for the interactor, which looks for it
    # everywhere it can reach, says what it found and ends the conversation.
    waiter = PLANTER.replace("print(1)", "print('planted', flush=True)") + "input()\n"
    doc = post(running, {"language": "python", "source": waiter,
                         "interactor": {"language": "python", "source": "input()\n" + SNOOPER},
                         "tests": [{"stdin": ""}]})
    test = doc["tests"][0]
    assert test["comment"] == "found []", test  # nothing of the program's
    # The interactor accepted; the program, its stdin ended, failed on its own.
    assert test["status"] == "runtime_error", test


def test_the_program_cannot_reach_the_interactors_files(running: System) -> None:
    # The interactor holds the test's input (here the secret) in its workspace while the
    # program, told to go, looks for it everywhere it can reach and reports what it found.
    snooper = "input()\n" + SNOOPER.replace("file=sys.stderr)", "flush=True)")
    holder = ("import sys\nsecret = open(sys.argv[1]).read()\nprint('go', flush=True)\n"
              "print(input(), file=sys.stderr)\n")
    doc = post(running, {"language": "python", "source": snooper,
                         "interactor": {"language": "python", "source": holder},
                         "tests": [{"stdin": SECRET}]})
    test = doc["tests"][0]
    assert (test["status"], test["comment"]) == ("ok", "found []"), test


def test_an_interactor_that_forks_and_lies_is_a_judge_error(
        running: System, backend: str) -> None:
    liar = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
            "sys.exit(42)\n")
    doc = post(running, {"language": "python", "source": GUESSER,
                         "interactor": {"language": "python", "source": liar},
                         "tests": [{"stdin": "5", "points": 1}]})
    test = doc["tests"][0]
    assert test["status"] == "internal_error", test
    assert test["comment"].startswith("judge error: the interactor exited with 42"), test
    assert test["score"] == 0 and doc["status"] == "internal_error"
    assert not _settled(running, backend), "processes of the interactor outlived it"


def test_an_interactor_that_spins_is_a_judge_error(running: System, backend: str) -> None:
    doc = post(running, {"language": "python", "source": GUESSER, "limits": {"wall_ms": 5000},
                         "interactor": {"language": "python", "source": "while True: pass\n",
                                        "limits": {"cpu_ms": 500}},
                         "tests": [{"stdin": "5"}]})
    assert statuses(doc) == ["internal_error"], doc
    assert doc["tests"][0]["comment"].startswith(
        "judge error: the interactor exceeded its")
    assert not _settled(running, backend)


# -- events -----------------------------------------------------------------------

async def test_each_test_verdict_is_an_event(running: System) -> None:
    exec_id = f"judged-{uuid.uuid4().hex[:10]}"
    async with httpx.AsyncClient(timeout=60) as c:
        r = await c.post(f"{running.url}/v1/executions", json={
            "id": exec_id, "events": True, "language": "python", "source": ECHO, "tests": [
                {"stdin": "1", "expected_output": "1", "points": 2},
                {"stdin": "2", "expected_output": "3", "points": 3}]})
        assert r.status_code == 200, r.text
        events = await collect(c, f"{running.url}/v1/executions/{exec_id}/events")
    kinds = [m["event"] for m in events]
    assert kinds.count("test") == 2 and kinds.index("test") < kinds.index("finished"), kinds
    tested = [m["data"] for m in events if m["event"] == "test"]
    assert [(t["test"], t["status"], t["score"]) for t in tested] == [
        (0, "ok", 2), (1, "wrong_answer", 0)]
    assert tested[1]["comment"] == "line 1: expected '3', got '2'"


# -- the Kafka path ---------------------------------------------------------------

async def test_a_kafka_producer_sends_a_judged_request(running: System) -> None:
    """Another team's producer, straight onto the requests topic: checker and points."""
    env = running.env
    exec_id = f"team-judged-{uuid.uuid4().hex}"
    async with team_clients(env, auto_offset_reset="latest") as (producer, consumer):
        doc = {"id": exec_id, "language": "python", "source": ANY_PAIR,
               "reply_to": {"topic": env["RUNSTREAM_REPLIES_TOPIC"],
                            "partition": TEAM_REPLY_PARTITION},
               "checker": {"language": "python", "source": PAIR_CHECKER_PY},
               "tests": [{"stdin": "2", "points": 3, "group": "g"},
                         {"stdin": "7", "points": 4, "group": "g"}]}
        await producer.send_and_wait(env["RUNSTREAM_REQUESTS_TOPIC"], orjson.dumps(doc),
                                     key=exec_id.encode())
        async with asyncio.timeout(120):
            while True:
                msg = await consumer.getone()
                if msg.key == exec_id.encode():
                    break
    result = orjson.loads(msg.value)
    validate_result_doc(result)
    assert statuses(result) == ["ok", "ok"], result
    assert (result["score"], result["max_score"]) == (7, 7)
    assert result["groups"] == [{"name": "g", "score": 7, "max_score": 7}]


# -- the documentation's examples -------------------------------------------------

JUDGING_DOC = Path(__file__).resolve().parents[2] / "docs" / "judging.md"


def shown(result: dict[str, Any]) -> dict[str, Any]:
    """A result as docs/judging.md shows it (its jq filter, nulls deleted)."""
    def kept(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if v is not None}
    tests = [kept({"index": t["index"], "status": t["status"], "score": t.get("score"),
                   "comment": t.get("comment"), "stdout": t["run"].get("stdout"),
                   "judge_stdout": (t.get("judge") or {}).get("stdout")})
             for t in result["tests"]]
    return kept({"status": result["status"], "score": result.get("score"),
                 "max_score": result.get("max_score"), "groups": result.get("groups"),
                 "tests": tests})


def test_the_docs_examples_are_what_the_pipeline_answers(system: System) -> None:
    """The floats, "any valid answer" and guess-the-number examples of docs/judging.md:
    each request, sent as shown, gets the result shown (bwrap, as the page says)."""
    blocks = [orjson.loads(b) for b in re.findall(r"```json\n(.*?)```", JUDGING_DOC.read_text(),
                                                   re.DOTALL)]
    floats, floats_result, rounded_result, pair, pair_result, guess, guess_result = blocks
    assert shown(post(system, floats)) == floats_result
    rounding = {**floats, "source": floats["source"].replace(
        "print(math.pi * r * r)", "print(round(math.pi * r * r, 5))")}
    assert rounding != floats and shown(post(system, rounding)) == rounded_result
    assert shown(post(system, pair)) == pair_result
    assert shown(post(system, guess)) == guess_result
