"""The documentation site builds, links resolve, and the reference pages cannot drift from code.

- `mkdocs build --strict` (offline, built-in theme) fails on a broken link or anchor, a nav entry
  without a page, and a page missing from the nav (mkdocs.yml `validation`); a negative build
  proves those checks really fire.
- The hook reference is generated from core/plugins/hookspecs.py and must be current and complete.
- Every `serve` flag of core/cli.py is documented (docs/cli.md or docs/operations.md).
- Every metric of core/observability/metrics.py is in docs/operations.md, and every metric
  named there exists.
- Every gRPC code an error class of core/errors.py maps to has a troubleshooting section.
- The credential-plugin example of docs/plugin-authors.md is real code that follows the rules.

Covered elsewhere, not repeated here: SecretProviderClass parameters and fields against
docs/secretproviderclass.md (tests/test_spc_reference_doc.py), Helm values against
docs/helm-values.md (tests/chart/test_values_doc.py).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from ack_secrets_provider.core import errors
from ack_secrets_provider.core.cli import build_parser
from ack_secrets_provider.core.mount.spec import parse_mount_request
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins import hookspecs
from ack_secrets_provider.core.plugins.credentials import (
    CredentialContext,
    CredentialHost,
    Identity,
)
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_GENERATOR = DOCS / "gen_hooks_doc.py"
_FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _doc(name: str) -> str:
    path = DOCS / name
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)],
        capture_output=True, text=True, timeout=120, check=False, cwd=config.parent,
    )


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return loaded


# -- the site -------------------------------------------------------------------------------


def test_site_builds_strict_offline(tmp_path: Path) -> None:
    proc = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "hooks.html").is_file()


_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = tmp_path_factory.mktemp("site") / "site"
    proc = _mkdocs_build(ROOT / "mkdocs.yml", built)
    assert proc.returncode == 0, proc.stderr
    return built


def test_the_site_loads_nothing_from_elsewhere(site: Path) -> None:
    """No script, style sheet, font or image from another host: the site works offline and
    tells no CDN who reads it (the theme's highlight.js came from cdnjs)."""
    loaded = re.compile(r"<(?:script|img|iframe)\b[^>]*\bsrc=\"([^\"]*)\"|"
                        r"<link\b[^>]*\bhref=\"([^\"]*)\"", re.IGNORECASE)
    css_urls = re.compile(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]([^'\"]+)")
    outside = []
    for page in site.rglob("*.html"):
        for match in loaded.finditer(page.read_text(encoding="utf-8")):
            url = match.group(1) or match.group(2) or ""
            if _EXTERNAL.match(url):
                outside.append(f"{page.name}: {url}")
    for sheet in site.rglob("*.css"):
        for match in css_urls.finditer(sheet.read_text(encoding="utf-8")):
            url = match.group(1) or match.group(2) or ""
            if _EXTERNAL.match(url) and not url.startswith("data:"):
                outside.append(f"{sheet.name}: {url}")
    assert not outside, outside
    assert "cdnjs" not in (site / "index.html").read_text(encoding="utf-8")
    # code is still highlighted, at build time: Pygments' token spans (without Pygments,
    # codehilite still writes class="codehilite", around plain text), styled by the site's CSS
    assert '<span class="c1">' in (site / "cli.html").read_text(encoding="utf-8")
    assert ".codehilite .c1 {" in (site / "css" / "highlight.css").read_text(encoding="utf-8")


def test_the_top_bar_stays_on_one_line_at_1400_px(site: Path, tmp_path: Path) -> None:
    """The site name, the sections and search/previous/next share one row in a 1400 px window
    (measured in headless Chromium, on a page where both Previous and Next are shown)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package chromium)")
    page = site / "cli.html"
    probe = ("<script>document.body.setAttribute('data-tops', JSON.stringify("
             "[...document.querySelectorAll('.navbar-brand, .navbar-nav > .nav-item')]"
             ".map(e => Math.round(e.getBoundingClientRect().top))))</script></body>")
    measured = page.with_name("measured.html")
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", probe, 1),
                        encoding="utf-8")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", measured.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    found = re.search(r'data-tops="([^"]+)"', proc.stdout)
    assert found, proc.stderr[-2000:]
    tops = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(tops) >= 8  # the brand, five sections, search, previous, next
    assert max(tops) - min(tops) <= 16, f"the top bar wraps: item tops {tops}"


def test_every_page_is_in_the_nav_once() -> None:
    config = _config()
    assert config["strict"] is True
    assert config["theme"]["name"] in ("mkdocs", "readthedocs"), "no theme needing downloads"
    pages = _nav_pages(config["nav"])
    assert len(pages) == len(set(pages)), "a page appears twice in the nav"
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(pages) == on_disk


def test_broken_links_and_unlisted_pages_fail_the_build(tmp_path: Path) -> None:
    """The strict build really catches what it is meant to catch (so the test above means it)."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy2(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    index = tmp_path / "docs" / "index.md"
    original = index.read_text(encoding="utf-8")
    cases = {
        "missing page": "[gone](no-such-page.md)",
        "missing anchor": "[gone](troubleshooting.md#no-such-section)",
    }
    for label, link in cases.items():
        index.write_text(original + f"\n{link}\n", encoding="utf-8")
        proc = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
        assert proc.returncode != 0, f"{label}: the strict build did not fail"
        assert "index.md" in proc.stderr, proc.stderr
    index.write_text(original, encoding="utf-8")
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    proc = _mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode != 0 and "orphan.md" in proc.stderr, proc.stderr


# -- hook reference -------------------------------------------------------------------------


def _declared_hooks() -> dict[str, Any]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: value for name, value in vars(hookspecs).items()
            if callable(value) and hasattr(value, marker)}


def test_hook_reference_is_current() -> None:
    proc = subprocess.run([sys.executable, str(HOOKS_GENERATOR), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, f"{proc.stderr}(regenerate with python {HOOKS_GENERATOR})"


def test_hook_reference_lists_every_hook_with_its_arguments() -> None:
    reference = _doc("hooks.md")
    hooks = _declared_hooks()
    assert hooks, "no hookspecs found: the marker attribute changed?"
    for name, function in hooks.items():
        assert f"## `{name}`" in reference, f"hook {name} is missing from docs/hooks.md"
        for argument in function.__code__.co_varnames[: function.__code__.co_argcount]:
            assert f"    {argument}: " in reference, f"{name}({argument}) is not documented"
        first_line = (function.__doc__ or "").strip().splitlines()[0]
        assert first_line in reference


def test_stale_hook_reference_is_detected(tmp_path: Path) -> None:
    stale = tmp_path / "hooks.md"
    stale.write_text(_doc("hooks.md").replace("ack_assume_role", "ack_renamed"), encoding="utf-8")
    proc = subprocess.run([sys.executable, str(HOOKS_GENERATOR), "--check", "--output",
                           str(stale)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1 and "stale" in proc.stderr


# -- serve flags, metrics, errors ----------------------------------------------------------


def _serve_parser() -> argparse.ArgumentParser:
    """`serve` with the built-in backends' flags (not those of plugins installed for tests)."""
    parser = build_parser(autoload_third_party=False)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            serve: argparse.ArgumentParser = action.choices["serve"]
            return serve
    raise AssertionError("no serve sub-command")


def test_every_serve_flag_is_documented() -> None:
    text = _doc("cli.md") + _doc("operations.md")
    missing = []
    for action in _serve_parser()._actions:
        if not action.option_strings or action.dest == "help":
            continue
        if not any(re.search("`" + re.escape(option) + r"(?![\w-])", text)
                   for option in action.option_strings):
            missing.append("/".join(action.option_strings))
    assert not missing, f"serve flags missing from docs/cli.md and docs/operations.md: {missing}"


def _exported_metric_names() -> set[str]:
    """Series names as Prometheus shows them (`_total`, `_info`), without histogram suffixes."""
    metrics = ProviderMetrics(process_collectors=False)
    names = set()
    for family in metrics.registry.collect():
        if family.type == "histogram":
            names.add(family.name)
        else:
            names.update(sample.name for sample in family.samples)
            if not family.samples:
                names.add(family.name + ("_total" if family.type == "counter" else ""))
    return {name for name in names if name.startswith("ack_secrets_provider_")}


def test_every_metric_is_in_the_operations_reference() -> None:
    operations = _doc("operations.md")
    exported = _exported_metric_names()
    assert "ack_secrets_provider_mounts_total" in exported
    documented_rows = set(re.findall(r"^\| `(ack_secrets_provider_\w+)` \|", operations,
                                     re.MULTILINE))
    assert exported - documented_rows == set(), "metrics without a row in docs/operations.md"
    mentioned = set(re.findall(r"ack_secrets_provider_\w+", operations))
    suffixes = ("_bucket", "_sum", "_count")
    unknown = {name for name in mentioned
               if name not in exported and name.removesuffix(next(
                   (s for s in suffixes if name.endswith(s)), "")) not in exported}
    assert unknown == set(), f"docs/operations.md names metrics that do not exist: {unknown}"


def test_troubleshooting_has_a_section_per_grpc_code() -> None:
    text = _doc("troubleshooting.md")
    classes: list[type[errors.ProviderError]] = [
        value for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ProviderError)
    ]
    for cls in classes:
        assert f"\n## {cls.code.name}\n" in text, f"no section for {cls.code.name} ({cls.__name__})"
        assert f"`{cls.reason}`" in text, f"reason {cls.reason} is not explained"


# -- the credential plugin example ---------------------------------------------------------


def _credential_example() -> types.ModuleType:
    guide = _doc("plugin-authors.md")
    blocks = [body for kind, body in _FENCE.findall(guide)
              if kind == "python" and "def ack_resolve_identity" in body]
    assert len(blocks) == 1, "docs/plugin-authors.md must hold one credential plugin example"
    module = types.ModuleType("docs_credential_example")
    exec(compile(blocks[0], "docs/plugin-authors.md", "exec"), module.__dict__)  # noqa: S102
    return module


def _context(host: CredentialHost, environ: dict[str, str], *, pod_identity: bool = False
             ) -> CredentialContext:
    """A mount's context as `host` gives it to its plugins, with `environ` as the provider's."""
    attributes = {"csi.storage.k8s.io/pod.namespace": "team-a",
                  "csi.storage.k8s.io/pod.name": "app-0",
                  "csi.storage.k8s.io/serviceAccount.name": "app"}
    if pod_identity:
        attributes["usePodServiceAccountToken"] = "true"
    request = parse_mount_request(json.dumps(attributes), "null", '"420"')
    settings = ProviderSettings(environ=types.MappingProxyType(environ))
    return CredentialContext(request=request, settings=settings, deadline=Deadline.after(5),
                             metrics=host.metrics, identities=host.identities)


def test_credential_plugin_example_follows_the_hook_rules(tmp_path: Path) -> None:
    module = _credential_example()
    host = CredentialHost(ProviderSettings())
    host.load(autoload_third_party=False, extra=[module])
    assert host.plugin_names()[0] != "pod-rrsa", "tryfirst must put the example first"

    (tmp_path / "access_key_id").write_text("LTAI5tDocsExample01\n")
    (tmp_path / "access_key_secret").write_text("docs-example-secret\n")
    configured = {module.SETTING: str(tmp_path), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}

    identity = host.resolve(_context(host, configured))
    assert isinstance(identity, Identity)
    assert identity.key.mode == "file-ak" and identity.key.access_key_id == "LTAI5tDocsExample01"
    assert "docs-example-secret" not in repr(identity) + identity.describe()
    assert host.resolve(_context(host, configured)) is identity, "one identity object per key"

    # not configured: None, so the chain goes on (here to "no credential is configured")
    with pytest.raises(errors.FailedPrecondition, match="no credential is configured"):
        host.resolve(_context(host, {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}))
    # the pod asked for its own identity: the example steps aside, pod-rrsa answers
    with pytest.raises(errors.FailedPrecondition, match="sts.aliyuncs.com"):
        host.resolve(_context(host, configured, pod_identity=True))
    # configured but failing: an error naming the setting, never a fallback
    (tmp_path / "access_key_secret").unlink()
    with pytest.raises(errors.FailedPrecondition, match=module.SETTING):
        host.resolve(_context(host, configured))


def test_serve_flag_table_is_generated_from_the_parser() -> None:
    result = subprocess.run([sys.executable, str(DOCS / "gen_cli_doc.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_three_names_are_explained_where_people_meet_them() -> None:
    """README and the command-line page say which name is which (the --help epilog too:
    tests/test_cli_serve.py)."""
    from ack_secrets_provider.core import DISTRIBUTION, RUNTIME_NAME
    from ack_secrets_provider.core.cli import PROG

    for page in (ROOT / "README.md", DOCS / "cli.md"):
        text = " ".join(page.read_text(encoding="utf-8").split())
        for name, meaning in ((PROG, "command"), (DISTRIBUTION, "Python distribution"),
                              (RUNTIME_NAME, "runtime name")):
            explained = re.search(r"`" + re.escape(name) + r"`( is| \|)[^|.]*" + meaning, text)
            assert explained, f"{page.name} does not say that {name} is the {meaning}"


#: a repository path a page names in backticks (`auth/emulator.py`, `tests/chart/official_v0_6_0/`)
REPO_PATH = re.compile(r"`((?:auth|backends|core|charts|examples|tests|tools)/[\w./-]*)`")


@pytest.mark.parametrize("page", ["authentication.md", "migration.md"])
def test_the_source_files_a_page_names_exist(page: str) -> None:
    """A page that sends readers to a file must name one that exists (authentication.md named
    auth/_refresh.py long after the refreshing provider moved to the plugin toolkit)."""
    named = REPO_PATH.findall((DOCS / page).read_text(encoding="utf-8"))
    assert named, f"{page} names no source file: the pattern no longer matches its paths"
    assert [path for path in named if not (ROOT / path).exists()] == []
