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
    session.run("ruff", "format", "--check", "src", "tests", "examples", "benchmarks")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks")


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
