"""The `bestiary` command line, called in-process through `main([...])`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import bestiary
from bestiary.cli import _build_for_counting, main, module_table
from bestiary.notebooks import discover


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_registered_model_with_family_and_summary(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    for name in bestiary.list_models():
        card = bestiary.card(name)
        assert name in lines, f"{name} missing from `bestiary list`"
        assert card.family in lines[name]
        assert lines[name].split(maxsplit=2)[2][:20] == card.summary[:20]
    assert f"{len(bestiary.list_models())} models" in out


def test_list_family_filters(capsys):
    code, out, _ = run(capsys, "list", "--family", "feedforward")
    assert code == 0
    shown = [line.split()[0] for line in out.splitlines()[2:] if line.strip() and "models in" not in line]
    assert shown == bestiary.list_models("feedforward")


def test_info_counts_parameters_and_tabulates_top_level_modules(capsys):
    code, out, _ = run(capsys, "info", "mlp")
    assert code == 0
    model = bestiary.build("mlp")
    total = sum(p.numel() for p in model.parameters())  # independent of bestiary.count_params
    assert f"Parameters (the default config): {total:,}" in out
    assert "Stacked Linear" in out and "Top-level modules" in out
    for name, child in model.named_children():
        n = sum(p.numel() for p in child.parameters())
        row = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{n:,}" in row and f"{100 * n / total:.1f}%" in row


def test_module_table_shares_add_up_for_a_model_without_tied_weights():
    model = bestiary.build("mlp")
    rows = module_table(model)
    assert sum(n for _, _, n, _ in rows) == sum(p.numel() for p in model.parameters())
    assert sum(pct for *_, pct in rows) == pytest.approx(100.0)


@pytest.mark.skipif(not bestiary.list_presets(), reason="no presets registered yet")
def test_info_on_a_preset_reports_its_published_count(capsys):
    # the preset with the smallest published count keeps this fast
    presets = [(bestiary.card(p).presets[p].params or 0, p) for p in bestiary.list_presets()]
    _, preset = min((n, p) for n, p in presets if n)
    code, out, _ = run(capsys, "info", preset)
    assert code == 0
    assert f"Config (preset {preset!r})" in out
    assert f"Published: {bestiary.card(preset).presets[preset].params:,}" in out


def test_counting_on_the_meta_device_matches_a_real_build():
    # `info` builds on torch's meta device (no memory); the count must be the real one
    for name in bestiary.list_models():
        meta = _build_for_counting(name, tiny=True)
        real = bestiary.build(name, tiny=True)
        assert bestiary.count_params(meta) == bestiary.count_params(real), name
    assert next(_build_for_counting("mlp").parameters()).device == torch.device("meta")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "mpl"], "Did you mean: mlp"),
        (["list", "--family", "nope"], "unknown family 'nope'"),
        (["notebooks", "run", "Z99"], "unknown notebook 'Z99'"),
        (["bench", "run", "no_such_benchmark"], "unknown benchmark"),
    ],
)
def test_mistakes_are_one_line_errors_with_exit_code_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.startswith("bestiary: error:")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_usage_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["notebooks", "build", "--jobs", "0"])
    assert "must be at least 1" in capsys.readouterr().err


def test_notebooks_list_shows_every_discovered_notebook(capsys):
    code, out, _ = run(capsys, "notebooks", "list")
    assert code == 0
    for nb in discover():
        line = next(line for line in out.splitlines() if line.startswith(nb.id + " "))
        assert nb.track in line and nb.title in line


def test_notebooks_run_and_build_on_a_tiny_checkout(tmp_path: Path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text("")
    folder = tmp_path / "notebooks" / "systems"
    folder.mkdir(parents=True)
    (folder / "S98_ok.py").write_text("# %% [markdown]\n# # S98 · Fine\n\n# %%\nprint(6 * 7)\n")
    (folder / "S99_broken.py").write_text("# %% [markdown]\n# # S99 · Broken\n\n# %%\nundefined_name\n")
    monkeypatch.setenv("BESTIARY_ROOT", str(tmp_path))

    code, out, _ = run(capsys, "notebooks", "run", "S99", "--quick")
    assert code == 1
    assert "S99 Broken: FAILED" in out and "NameError" in out and "undefined_name" in out

    code, out, err = run(capsys, "notebooks", "build", "--quick", "--jobs", "1", "S99")
    assert code == 1  # a failed notebook fails the build ...
    assert "0/1 ok" in out and "S99 FAILED" in err and "NameError" in err and "undefined_name" in err
    # ... but its page and the index are still written
    assert "NameError" in (tmp_path / "build" / "site" / "systems" / "S99_broken.html").read_text()
    index = (tmp_path / "build" / "site" / "index.html").read_text()
    assert "<tr class='failed'><td class='id'>S99</td>" in index
    assert "<tr class='none'><td class='id'>S98</td>" in index  # listed, not built

    code, out, err = run(capsys, "notebooks", "build", "--quick", "--jobs", "1", "S98")
    assert code == 0 and "1/1 ok" in out
    index = (tmp_path / "build" / "site" / "index.html").read_text()
    assert "<tr class='ok'><td class='id'>S98</td>" in index
    assert "<tr class='failed'><td class='id'>S99</td>" in index  # earlier results are kept


def test_bench_lists_the_benchmark_scripts(capsys):
    from bestiary.notebooks import repo_root

    code, out, _ = run(capsys, "bench", "list")
    assert code == 0
    scripts = sorted(p.stem for p in (repo_root() / "benchmarks").glob("*.py") if not p.name.startswith("_"))
    shown = [line.split()[0] for line in out.splitlines()[2:] if line.strip()]
    assert shown == scripts or (not scripts and "no benchmark scripts" in out)
