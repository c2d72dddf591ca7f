"""The built site, opened in a real browser (Debian's headless Chromium, driven by Playwright).

A miniature checkout with three notebooks is built (two executed, one left unbuilt), served by
`bestiary site serve`'s server on 127.0.0.1, and every page is visited as a reader would: it loads
with no console error, no link or image is broken, KaTeX has rendered every formula, the catalog's
search box and family filter show exactly the right rows, and previous / next links chain the
lessons. Screenshots of the index, a notebook and the catalog are kept in build/screenshots/.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from bestiary import notebooks
from bestiary.notebooks.catalog_page import catalog_rows
from bestiary.notebooks.site import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"

MATH = """# %% [markdown]
# # F96 · Math on the page
#
# ## What you'll learn
# - that formulas render.
#
# The logistic function $\\sigma(z) = 1 / (1 + e^{-z})$ squashes any score into $(0, 1)$:
#
# $$\\hat y = \\sigma(w^\\top x + b)$$

# %%
import matplotlib.pyplot as plt
import numpy as np

z = np.linspace(-6, 6, 100)
plt.plot(z, 1 / (1 + np.exp(-z)))
plt.show()

# %% [markdown]
# ## Experiments to try
# - Plot the derivative too.
"""

USES_A_MODEL = """# %% [markdown]
# # F97 · A notebook that builds a model
#
# ## What you'll learn
# - that the catalog links back here.

# %%
import bestiary

model = bestiary.build("mlp", tiny=True)
print(bestiary.count_params(model))
"""

UNBUILT = """# %% [markdown]
# # F98 · Not built
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    pytest.importorskip("playwright")
    root = tmp_path_factory.mktemp("checkout")
    (root / "pyproject.toml").write_text("")
    folder = root / "notebooks" / "foundations"
    folder.mkdir(parents=True)
    (folder / "F96_math.py").write_text(MATH)
    (folder / "F97_model.py").write_text(USES_A_MODEL)
    (folder / "F98_unbuilt.py").write_text(UNBUILT)
    out = root / "build"
    results = notebooks.build(["F96", "F97"], quick=True, jobs=2, out_dir=out, root=root, progress=False)
    assert all(r.ok for r in results), [r.failure for r in results]
    server = make_server(out, port=0)  # a free port on 127.0.0.1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


PAGES = [
    "/site/index.html",
    "/site/catalog.html",
    "/site/foundations/F96_math.html",
    "/site/foundations/F97_model.html",
    "/site/foundations/F98_unbuilt.html",
]


def _open(browser, url: str):
    """A page at `url`, with the console errors and page errors it produced."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.ok, f"{url}: HTTP {response and response.status}"
    return page, errors


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_without_errors_broken_links_or_images(site, browser, path):
    page, errors = _open(browser, site + path)
    assert errors == [], f"{path}: console errors {errors}"
    broken_images = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 80))"
    )
    assert broken_images == [], f"{path}: images that did not load: {broken_images}"
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    checked = 0
    for href in hrefs:
        url = urljoin(site + path, href)
        if urlparse(url).netloc != urlparse(site).netloc or href.startswith("#"):
            continue  # external (arXiv) links are not fetched: no network here
        status = page.request.get(url).status
        assert status == 200, f"{path}: link {href} -> HTTP {status}"
        checked += 1
    assert checked > 0, f"{path}: no local link at all"
    page.close()


def test_math_is_rendered_by_katex(site, browser):
    page, _ = _open(browser, site + "/site/foundations/F96_math.html")
    page.wait_for_selector(".katex", timeout=10_000)
    assert page.locator(".katex-display").count() == 1  # the $$...$$ block
    assert page.locator(".katex").count() >= 3  # the display formula and two inline ones
    text = page.inner_text("body")
    assert "$$" not in text and "\\sigma" not in text, "raw TeX left on the page"
    page.close()


def test_catalog_search_and_family_filter_show_exactly_the_matching_rows(site, browser):
    page, _ = _open(browser, site + "/site/catalog.html")
    names = [name for _, name, _ in catalog_rows()]
    all_rows = page.locator("#catalog tbody tr")
    assert all_rows.count() >= len(names)

    def visible_names() -> list[str]:
        return page.eval_on_selector_all(
            "#catalog tbody tr", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.name)"
        )

    page.fill("#search", "resnet")
    shown = visible_names()
    assert shown and all("resnet" in name for name in shown)
    assert len(shown) == all_rows.count() - page.locator("#catalog tbody tr[hidden]").count()
    assert "mlp" not in shown
    page.fill("#search", "")
    page.select_option("#family", "transformer")
    families = page.eval_on_selector_all(
        "#catalog tbody tr", "rows => rows.filter(r => !r.hidden).map(r => r.dataset.family)"
    )
    assert families and set(families) == {"transformer"}
    assert "decoder_only" in visible_names()
    # a registered model shows its paper, its sizes and the notebook that builds it
    row = page.locator("#catalog tbody tr[data-name='mlp']")
    page.select_option("#family", "")
    assert "F97" in row.inner_text() and "default" in row.inner_text()
    page.close()


def test_lessons_chain_with_previous_and_next_links(site, browser):
    page, _ = _open(browser, site + "/site/foundations/F97_model.html")
    assert page.get_attribute("a.prev", "href") == "../foundations/F96_math.html"
    assert page.get_attribute("a.next", "href") == "../foundations/F98_unbuilt.html"
    page.click("a.next")
    assert "Not built yet" in page.inner_text("body")
    page.close()


def test_screenshots_of_index_notebook_and_catalog(site, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in (
        ("index", "/site/index.html"),
        ("notebook", "/site/foundations/F96_math.html"),
        ("catalog", "/site/catalog.html"),
    ):
        page, _ = _open(browser, site + path)
        target = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(target))
        assert target.stat().st_size > 10_000  # a rendered page, not a blank one
        page.close()
