"""Every language through the whole pipeline (HTTP -> Kafka -> worker -> sandbox), on
both sandbox backends: its sample program with stdin, arguments, a runtime error, a
compile error (compiled languages), memory past the limit (managed runtimes: the heap
flags come from the request's limit, the verdict is memory_limit_exceeded), and the
version the workers announce. Then, per runtime family (JVM, .NET, BEAM, GHC, native),
a program that tries the network, a host secret and the read-only system folders.

The programs are data: tests/language_cases.toml. All the runs of a backend go at once,
as many in flight as the workers have slots, so the whole matrix costs about as much as
its slowest languages (the JVM compilers); the time is printed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.programs import CASES
from tests.system import System

from .conftest import REGISTRY, docker_skip_reason

pytestmark = [pytest.mark.sandbox, pytest.mark.kafka, pytest.mark.timeout(900)]

STDIN = "runstream\n"
GREETING = "Hello, runstream!\n"
ARGS = ["a b", "c"]
OOM_LIMITS = {"memory_mb": 128, "wall_ms": 20000, "cpu_ms": 20000}
# Room for the JVMs' start on a busy 2-core machine: this suite checks behaviour, not speed.
LIMITS = {"wall_ms": 20000, "cpu_ms": 20000}


@dataclass
class Run:
    """One request of the matrix and what its result must show."""

    language: str
    case: str
    body: dict[str, Any]
    check: Callable[[dict[str, Any]], str | None]
    problems: list[str] = field(default_factory=list)
    took_s: float = 0.0


def _ok_with(stdout: str) -> Callable[[dict[str, Any]], str | None]:
    def check(doc: dict[str, Any]) -> str | None:
        if doc["status"] != "ok" or doc["run"]["stdout"] != stdout:
            return f"wanted ok with {stdout!r}"
        return None
    return check


def _runtime_error(doc: dict[str, Any]) -> str | None:
    run = doc.get("run") or {}
    if doc["status"] != "runtime_error" or run.get("exit_code") in (0, None):
        return "wanted runtime_error with a non-zero exit"
    return None


def _compile_error(doc: dict[str, Any]) -> str | None:
    compiled = doc.get("compile") or {}
    if (doc["status"] != "compile_error" or compiled.get("exit_code") in (0, None)
            or doc.get("run") is not None):
        return "wanted compile_error with the compiler's non-zero exit and no run"
    return None


def _memory(doc: dict[str, Any]) -> str | None:
    if doc["status"] != "memory_limit_exceeded":
        return "wanted memory_limit_exceeded"
    return None


def matrix(languages: list[str]) -> list[Run]:
    runs = []
    for name in languages:
        lang, case = REGISTRY.resolve(name), CASES[name]
        runs.append(Run(name, "sample", {"source": lang.sample, "stdin": STDIN},
                        _ok_with(GREETING)))
        runs.append(Run(name, "args", {"source": case["args"], "args": case.get("argv", ARGS)},
                        _ok_with("a b\nc\n")))
        runs.append(Run(name, "fail", {"source": case["fail"]}, _runtime_error))
        if lang.compiled:
            runs.append(Run(name, "broken", {"source": case["broken"]}, _compile_error))
        if "oom" in case:
            runs.append(Run(name, "oom", {"source": case["oom"], "limits": OOM_LIMITS},
                            _memory))
    # Case by case rather than language by language: a language's compiles (kotlinc's
    # JVM, nim's gcc) then do not all run at once.
    order = ["sample", "args", "fail", "broken", "oom"]
    return sorted(runs, key=lambda run: order.index(run.case))


async def run_all(system: System, runs: list[Run]) -> dict[str, str]:
    """Send every run, ``slots`` at a time; the versions /v1/languages lists."""
    gate = asyncio.Semaphore(max(2, system.slots * len(system.workers)))
    async with httpx.AsyncClient(base_url=system.url, timeout=180) as client:
        listed = {lang["name"]: lang["version"] for lang in
                  (await client.get("/v1/languages")).json()["languages"]}

        async def send(run: Run) -> None:
            async with gate:
                t0 = time.monotonic()
                r = await client.post("/v1/executions", json={
                    "language": run.language, "limits": LIMITS, **run.body})
                if r.status_code == 202:  # past the ingress's wait: a busy machine
                    location = r.headers["location"]
                    while r.status_code == 202:
                        r = await client.get(location, params={"wait": 30})
                run.took_s = time.monotonic() - t0
            if r.status_code != 200:
                run.problems.append(f"HTTP {r.status_code}: {r.text[:300]}")
                return
            doc = r.json()
            problem = run.check(doc)
            if problem:
                phase = doc.get("run") or doc.get("compile") or {}
                run.problems.append(f"{problem}; got {doc['status']} exit "
                                    f"{phase.get('exit_code')} {phase.get('signal')} "
                                    f"(message {doc.get('message')!r}), "
                                    f"stdout {phase.get('stdout', '')[-200:]!r}, "
                                    f"stderr {phase.get('stderr', '')[-300:]!r}")
            if not doc.get("version") or doc["version"] != listed.get(run.language):
                run.problems.append(f"version {doc.get('version')!r}, listed "
                                    f"{listed.get(run.language)!r}")

        await asyncio.gather(*(send(run) for run in runs))
    return listed


def docker_languages() -> tuple[list[str], list[str]]:
    """Languages whose image exists here, and why the others are left out."""
    import docker
    from runstream.services.settings import Settings

    client = docker.DockerClient(base_url=Settings.from_env({}).sandbox_docker_url, timeout=10)
    have, missing = [], []
    try:
        for lang in REGISTRY:
            try:
                client.images.get(lang.image)
                have.append(lang.name)
            except docker.errors.ImageNotFound:
                missing.append(f"{lang.name} (image {lang.image} is missing: "
                               f".ci/build-images.sh {lang.name})")
    finally:
        client.close()
    return sorted(have), missing


@pytest.mark.parametrize("backend", ["bwrap", pytest.param("docker", marks=pytest.mark.docker)])
def test_every_language_through_the_pipeline(backend: str,
                                             request: pytest.FixtureRequest) -> None:
    if backend == "docker":
        reason = docker_skip_reason()
        if reason:
            pytest.skip(reason)
        languages, missing = docker_languages()
        for why in missing:
            print(f"language matrix on docker: skipping {why}")
    else:
        languages = REGISTRY.names()
    system: System = request.getfixturevalue("system" if backend == "bwrap" else
                                             "docker_system")
    runs = matrix(languages)
    t0 = time.monotonic()
    listed = asyncio.run(run_all(system, runs))
    took = time.monotonic() - t0
    slowest = sorted(runs, key=lambda run: -run.took_s)[:6]
    print(f"language matrix on {backend}: {len(languages)} languages, {len(runs)} runs "
          f"in {took:.1f}s; slowest: " + ", ".join(f"{run.language}/{run.case} "
                                                  f"{run.took_s:.1f}s" for run in slowest))
    assert set(languages) <= set(listed), f"not served: {set(languages) - set(listed)}"
    failures = [f"{run.language}/{run.case}: {p}" for run in runs for p in run.problems]
    assert not failures, "\n".join(failures)


# -- per runtime family: no network, no host secrets, read-only system folders ----------

FAMILIES = {
    "jvm (kotlin)": ("kotlin", '''
fun attempt(what: String, action: () -> Unit) =
    println(what + ": " + try { action(); "done" } catch (e: Exception) { "blocked" })

fun main() {
    attempt("net") { java.net.Socket("1.1.1.1", 53).close() }
    attempt("secret") { java.io.File("/etc/shadow").readText() }
    attempt("system") { java.io.File("/usr/bin/runstream-was-here").writeText("x") }
}
''', ["net", "secret", "system"]),
    ".net (csharp)": ("csharp", '''
using System;
using System.IO;
using System.Net.Sockets;

class P {
    static void Attempt(string what, Action action) {
        try { action(); Console.WriteLine(what + ": done"); }
        catch (Exception) { Console.WriteLine(what + ": blocked"); }
    }
    static void Main() {
        Attempt("net", () => new TcpClient("1.1.1.1", 53).Close());
        Attempt("secret", () => File.ReadAllText("/etc/shadow"));
        Attempt("system", () => File.WriteAllText("/usr/bin/runstream-was-here", "x"));
    }
}
''', ["net", "secret", "system"]),
    "beam (erlang)": ("erlang", '''
main(_) ->
    Say = fun(What, ok) -> io:format("~s: done~n", [What]);
             (What, {ok, _}) -> io:format("~s: done~n", [What]);
             (What, _) -> io:format("~s: blocked~n", [What]) end,
    Say("net", gen_tcp:connect({1, 1, 1, 1}, 53, [], 2000)),
    Say("secret", file:read_file("/etc/shadow")),
    Say("system", file:write_file("/usr/bin/runstream-was-here", "x")).
''', ["net", "secret", "system"]),
    # GHC's base has no sockets (the network package is not installed): files only.
    "ghc (haskell)": ("haskell", '''
import Control.Exception

attempt :: String -> IO () -> IO ()
attempt what action = do
  r <- try action :: IO (Either SomeException ())
  putStrLn (what ++ ": " ++ either (const "blocked") (const "done") r)

main :: IO ()
main = do
  attempt "secret" (readFile "/etc/shadow" >>= \\s -> length s `seq` return ())
  attempt "system" (writeFile "/usr/bin/runstream-was-here" "x")
''', ["secret", "system"]),
    "native (d)": ("d", '''
import std.stdio, std.socket, std.file;

void attempt(string what, void delegate() action) {
    try { action(); writeln(what, ": done"); }
    catch (Exception e) { writeln(what, ": blocked"); }
}

void main() {
    attempt("net", { new TcpSocket(new InternetAddress("1.1.1.1", 53)).close(); });
    attempt("secret", { readText("/etc/shadow"); });
    attempt("system", { std.file.write("/usr/bin/runstream-was-here", "x"); });
}
''', ["net", "secret", "system"]),
}


@pytest.mark.parametrize("backend", ["bwrap", pytest.param("docker", marks=pytest.mark.docker)])
def test_runtime_families_stay_inside(backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "docker":
        reason = docker_skip_reason()
        if reason:
            pytest.skip(reason)
        have, missing = docker_languages()
        families = {k: v for k, v in FAMILIES.items() if v[0] in have}
        for why in missing:
            if any(why.startswith(v[0] + " ") for v in FAMILIES.values()):
                print(f"runtime families on docker: skipping {why}")
    else:
        families = FAMILIES
    system: System = request.getfixturevalue("system" if backend == "bwrap" else
                                             "docker_system")
    runs = [Run(lang, family, {"source": src},
                _ok_with("".join(f"{what}: blocked\n" for what in attempts)))
            for family, (lang, src, attempts) in families.items()]
    asyncio.run(run_all(system, runs))
    failures = [f"{run.case}: {p}" for run in runs for p in run.problems]
    assert not failures, "\n".join(failures)
