"""Nox sessions: tests, lint, typecheck, examples, demo, bench, and the proof harness."""

from __future__ import annotations

import nox

nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

PYTHONS = ["3.11"]


def _install(session: nox.Session) -> None:
    session.install("-e", ".[test]")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite, S3 included (the tests start their own moto server)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS)
def tests_s3(session: nox.Session) -> None:
    """Only the S3 tests."""
    _install(session)
    session.run("pytest", "-m", "s3", *session.posargs)


@nox.session(python=PYTHONS)
def lint(session: nox.Session) -> None:
    """ruff format --check and ruff check (ASYNC, TC, B, UP, …)."""
    session.install("ruff")
    targets = ["src", "tests", "examples", "benchmarks", "harness", "noxfile.py", "hatch_build.py"]
    session.run("ruff", "format", "--check", *targets)
    session.run("ruff", "check", *targets)


@nox.session(python=PYTHONS)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package."""
    _install(session)
    session.run("mypy", *session.posargs)


@nox.session(python=PYTHONS)
def examples(session: nox.Session) -> None:
    """Run every example script (the test suite also does)."""
    _install(session)
    session.run("pytest", "tests/test_examples.py", *session.posargs)


@nox.session(python=PYTHONS)
def demo(session: nox.Session) -> None:
    """The main example on the local filesystem."""
    _install(session)
    session.run("python", "examples/quickstart.py", *session.posargs)


@nox.session(python=PYTHONS)
def bench(session: nox.Session) -> None:
    """Run every benchmark and write docs/benchmarks.md (pass --quick for a smoke run)."""
    _install(session)
    session.run("python", "benchmarks/run_all.py", *session.posargs)


# ----------------------------------------------------------------- proof harness
# Long versions (docs/reliability.md records their figures); tests/harness/ runs
# the short versions in CI. Extra arguments go to the script, e.g.
# ``nox -s harness_faults -- --schedules 500``.


@nox.session(python=PYTHONS)
def harness_faults(session: nox.Session) -> None:
    """Randomised fault schedules over Dataset writes (every codec) and Volume commits."""
    _install(session)
    session.run("python", "-m", "harness.faults", *(session.posargs or ["--schedules", "10000"]))


@nox.session(python=PYTHONS)
def harness_crash(session: nox.Session) -> None:
    """Writer processes SIGKILLed at random instants, on the filesystem and on S3 (moto)."""
    _install(session)
    for backend in ("file", "s3"):
        session.run(
            "python", "-m", "harness.crash", "--backend", backend,
            *(session.posargs or ["--kills", "100"]),
        )  # fmt: skip


@nox.session(python=PYTHONS)
def harness_races(session: nox.Session) -> None:
    """8 processes x 50 commits on one Dataset and one Volume, filesystem and S3."""
    _install(session)
    for backend in ("file", "s3"):
        session.run(
            "python", "-m", "harness.races", "--backend", backend,
            *(session.posargs or ["--procs", "8", "--commits", "50"]),
        )  # fmt: skip


@nox.session(python=PYTHONS)
def harness_fuzz(session: nox.Session) -> None:
    """Hypothesis fuzzing of keys, ids, partition values, metadata, manifest and data bytes."""
    _install(session)
    examples = session.posargs[0] if session.posargs else "1000"
    session.run(
        "pytest", "tests/harness/test_fuzz.py", "-p", "no:randomly", "-q", "--tb=native",
        "--hypothesis-show-statistics",
        env={"AIOLODE_FUZZ_EXAMPLES": examples},
    )  # fmt: skip


@nox.session(python=PYTHONS)
def harness_cancel(session: nox.Session) -> None:
    """Cancellation at every store call of write, stream_write(_records), commit, stage_write_at."""
    _install(session)
    for backend in ("asyncio", "trio"):
        session.run("python", "-m", "harness.cancel", "--backend", backend)


@nox.session(python=PYTHONS)
def harness_lifecycle(session: nox.Session) -> None:
    """Expire/gc/drop racing writers, SIGKILLed, and under faults; filesystem and S3."""
    _install(session)
    for backend in ("file", "s3"):
        session.run(
            "python", "-m", "harness.lifecycle", "--backend", backend,
            *(session.posargs or ["--minutes", "6"]),
        )  # fmt: skip


@nox.session(python=PYTHONS)
def harness_hostile(session: nox.Session) -> None:
    """Hostile arguments over every public call: the sweep, and the Hypothesis fuzz long."""
    _install(session)
    examples = session.posargs[0] if session.posargs else "2000"
    session.run(
        "pytest", "tests/harness/test_hostile_api.py", "-p", "no:randomly", "-q",
        env={"AIOLODE_HOSTILE_EXAMPLES": examples},
    )  # fmt: skip


@nox.session(python=PYTHONS)
def harness_damage(session: nox.Session) -> None:
    """The damage matrix: every stored object x damage x read call, memory and filesystem."""
    _install(session)
    for seed, backend in enumerate(("asyncio", "trio")):
        session.run(
            "python", "-m", "harness.damage", "--backend", backend,
            *(session.posargs or ["--store", "both", "--flips", "3", "--seed", str(seed)]),
        )  # fmt: skip


@nox.session(python=PYTHONS)
def harness(session: nox.Session) -> None:
    """The CI-sized harness (what tests/harness/ runs), both backends, filesystem and S3."""
    _install(session)
    session.run("pytest", "tests/harness", "-p", "no:randomly", *session.posargs)


@nox.session(python=PYTHONS)
def verifytypes(session: nox.Session) -> None:
    """Type completeness of the public API (pyright --verifytypes): must be 100%."""
    session.install(".", "pyright")
    session.run("pyright", "--verifytypes", "aiolode", "--ignoreexternal")
