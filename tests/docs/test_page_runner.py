"""The docs' block runner catches what a reader would trip over: each rule of
test_code_blocks.py, tried on a small page that breaks it and one that keeps it."""

from __future__ import annotations

from pathlib import Path

from tests.docs.page_runner import run_page

FENCE = "```"


def failures_of(tmp_path: Path, markdown: str) -> list[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    page = tmp_path / "page.md"
    page.write_text(markdown.replace("'''", FENCE))
    work = tmp_path / "work"
    work.mkdir()
    return run_page(page, work)


def test_a_fragment_runs_only_when_marked_as_continuing_the_block_above(tmp_path: Path) -> None:
    first = "'''python\ntotal = 2 + 3\n'''\n\n"
    second = "'''python\nassert total == 5\n'''\n"
    [alone] = failures_of(tmp_path / "a", first + second)
    assert "NameError" in alone
    assert alone.startswith("page.md:5:")
    assert failures_of(tmp_path / "b", first + "<!-- continue -->\n" + second) == []


def test_an_unknown_errands_option_is_reported_without_running_anything(tmp_path: Path) -> None:
    page = "'''bash\nerrands worker shop:app --queus mail\n'''\n"
    [failure] = failures_of(tmp_path, page)
    assert "No such option '--queus'" in failure


def test_a_run_block_must_print_what_its_comment_promises(tmp_path: Path) -> None:
    good = "<!-- run -->\n'''bash\necho receipt sent   # -> receipt sent\n'''\n"
    bad = "<!-- run -->\n'''bash\necho nothing   # -> receipt sent\n'''\n"
    assert failures_of(tmp_path / "good", good) == []
    [failure] = failures_of(tmp_path / "bad", bad)
    assert "without ['receipt sent']" in failure


def test_a_file_block_is_run_by_the_run_block_that_names_it(tmp_path: Path) -> None:
    page = (
        "'''python\n# shop.py\nprint('from shop')\n'''\n\n"
        "<!-- run -->\n'''console\n$ python shop.py\nfrom shop\n'''\n"
    )
    assert failures_of(tmp_path, page) == []
    assert (tmp_path / "work" / "shop.py").read_text() == "# shop.py\nprint('from shop')\n"


def test_markers_and_languages_outside_the_rules_fail(tmp_path: Path) -> None:
    [typo] = failures_of(tmp_path / "a", "<!-- contniue -->\n'''python\npass\n'''\n")
    assert "unknown marker 'contniue'" in typo
    [reasonless] = failures_of(tmp_path / "b", "<!-- compile-only -->\n'''python\npass\n'''\n")
    assert "needs a reason" in reasonless
    [language] = failures_of(tmp_path / "c", "'''perl\nprint 1;\n'''\n")
    assert "no rule for language 'perl'" in language


def test_config_blocks_are_parsed(tmp_path: Path) -> None:
    [failure] = failures_of(tmp_path, "'''yaml\nservices: [worker\n'''\n")
    assert "yaml does not parse" in failure
