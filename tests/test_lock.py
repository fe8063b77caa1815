"""requirements/*.lock agree with pyproject.toml (the image installs only from them).

A dependency added to, removed from or narrowed in pyproject.toml without `python3 tasks.py lock`
fails here, before an image build would (the image's pip refuses an unlocked package).
"""

from __future__ import annotations

from lockfile import (
    BUILD_LOCK,
    FROM_PYPROJECT,
    IMAGE_LOCK,
    PYPROJECT,
    Pin,
    parse,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

FIX = "run `python3 tasks.py lock` (CONTRIBUTING.md)"


def disagreements(dependencies: list[str], pins: dict[str, Pin]) -> list[str]:
    """Why the runtime lock does not match these [project] dependencies (empty: it does)."""
    problems = []
    wanted = {canonicalize_name(Requirement(d).name): Requirement(d) for d in dependencies}
    for name, requirement in wanted.items():
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{requirement} is in pyproject.toml but not in {IMAGE_LOCK.name}")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} is locked at {pin.version}, outside its range")
        elif FROM_PYPROJECT not in pin.via:
            problems.append(f"{requirement} is locked only as another package's dependency")
    for name, pin in pins.items():
        if FROM_PYPROJECT in pin.via and name not in wanted:
            problems.append(f"{name} is locked for pyproject.toml, which no longer lists it")
        stale = [v for v in pin.via if v != FROM_PYPROJECT and canonicalize_name(v) not in pins]
        if stale or not pin.via:
            problems.append(f"{name} is locked for {', '.join(stale) or 'nothing'}, not locked")
        if not pin.hashes:
            problems.append(f"{name} has no hash")
    return [f"{problem}: {FIX}" for problem in problems]


def test_image_lock_matches_pyproject() -> None:
    pins = parse(IMAGE_LOCK.read_text())
    assert disagreements(PYPROJECT["project"]["dependencies"], pins) == []


def test_every_pin_has_sha256_hashes_and_says_how_to_regenerate() -> None:
    for lock in (IMAGE_LOCK, BUILD_LOCK):
        text = lock.read_text()
        assert "python3 tasks.py lock" in text.splitlines()[1]
        for pin in parse(text).values():
            assert pin.hashes and all(len(h) == 64 for h in pin.hashes), pin.name


def test_a_dependency_missing_from_the_lock_is_reported() -> None:
    pins = parse(IMAGE_LOCK.read_text())
    dependencies = list(PYPROJECT["project"]["dependencies"])
    added = disagreements([*dependencies, "ack-new-dependency>=1"], pins)
    assert added == [f"ack-new-dependency>=1 is in pyproject.toml but not in image.lock: {FIX}"]
    # locked only because another package needs it: declaring it directly needs a new lock too
    indirect = next(name for name, pin in sorted(pins.items()) if FROM_PYPROJECT not in pin.via)
    assert disagreements([*dependencies, indirect], pins) == [
        f"{indirect} is locked only as another package's dependency: {FIX}"]


def test_a_removed_or_narrowed_dependency_is_reported() -> None:
    pins = parse(IMAGE_LOCK.read_text())
    dependencies = list(PYPROJECT["project"]["dependencies"])
    (jmespath,) = [d for d in dependencies if d.startswith("jmespath")]
    removed = disagreements([d for d in dependencies if d != jmespath], pins)
    assert removed == [f"jmespath is locked for pyproject.toml, which no longer lists it: {FIX}"]
    narrowed = disagreements([*(d for d in dependencies if d != jmespath), "jmespath>=99"], pins)
    assert narrowed[0].startswith(f"jmespath>=99 is locked at {pins['jmespath'].version}")


def test_build_lock_pins_the_build_requirements() -> None:
    pins = parse(BUILD_LOCK.read_text())
    for spec in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(spec)
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{spec} missing from {BUILD_LOCK.name}: {FIX}"
        assert requirement.specifier.contains(pin.version), f"{spec}: {FIX}"
