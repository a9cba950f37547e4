"""Sessions: `nox` runs tests and lint; `nox -s main` runs the main job."""

import shutil

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite in two processes, a test file each at a time; arguments go to
    pytest (`nox -s tests -- -k armijo`; `-- -n 0` for one process)."""
    session.install("-e", ".[test]")
    session.run(
        "pytest",
        "-n",
        "2",
        "--dist",
        "loadfile",
        "--no-loadscope-reorder",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def main(session: nox.Session) -> None:
    """The main job: the paper's deterministic suite on the embedded digits
    (`python -m benchmarks.paper deterministic --scale cpu --dataset digits`;
    arguments go to it, e.g. `nox -s main -- --steps 500`). The environment also
    has optax, so that every README example runs in `.nox/main`."""
    session.install("-e", ".[plot,optax]")
    session.run(
        "python",
        "-m",
        "benchmarks.paper",
        "deterministic",
        "--scale",
        "cpu",
        "--dataset",
        "digits",
        *session.posargs,
    )


@nox.session(default=False)
def paper(session: nox.Session) -> None:
    """One suite of the paper (`nox -s paper -- stochastic --scale cpu`)."""
    session.install("-e", ".[plot,tfds]")
    session.run("python", "-m", "benchmarks.paper", *session.posargs)


@nox.session(default=False)
def device(session: nox.Session) -> None:
    """Everything a GPU should show, in one command within 8 minutes on one GPU
    (`python -m benchmarks.device`; arguments go to it: `nox -s device --
    --data-dir data/fashion-mnist`, or `-- --cpu` on a CPU). Where `nvidia-smi` is
    found it installs JAX for CUDA 12."""
    session.install("-e", ".[bench]")
    if shutil.which("nvidia-smi"):
        session.install("jax[cuda12]")
    session.run("python", "-m", "benchmarks.device", *session.posargs)
