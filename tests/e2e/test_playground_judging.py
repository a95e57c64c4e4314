"""The playground's judging options in a real headless Chromium, on the session's system:
a standard checker with points, and an interactor pasted in (docs/judging.md).
Helpers and the browser are test_playground_browser's."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.e2e.test_playground_browser import (
    browser,  # noqa: F401  (the fixture)
    open_playground,
    set_field,
    shoot,
    text,
    type_program,
    verdict,
)
from tests.system import System

pytestmark = [pytest.mark.kafka, pytest.mark.sandbox]


def add_tests(browser: WebDriver, tests: list[tuple[str, str, str]]) -> None:  # noqa: F811
    browser.find_element(By.CSS_SELECTOR, "#tests-editor summary").click()
    for stdin, expected, points in tests:
        browser.find_element(By.ID, "add-test").click()
        row = browser.find_elements(By.CSS_SELECTOR, "#test-list .test")[-1]
        row.find_element(By.CSS_SELECTOR, ".test-stdin").send_keys(stdin)
        row.find_element(By.CSS_SELECTOR, ".test-expected").send_keys(expected)
        row.find_element(By.CSS_SELECTOR, ".test-points").send_keys(points)


def test_a_floats_checker_with_points(browser: WebDriver, system: System) -> None:  # noqa: F811
    open_playground(browser, system.url + "/")
    Select(browser.find_element(By.ID, "language")).select_by_value("python")
    type_program(browser, "print(int(input()) / 3)")
    add_tests(browser, [("1", "0.333333", "2"), ("2", "0.7", "3")])
    Select(browser.find_element(By.ID, "checker")).select_by_value("floats")
    set_field(browser, "#abs_error", "0.000001")
    browser.find_element(By.ID, "run").click()
    verdict(browser, "Wrong answer")
    rows = browser.find_elements(By.CSS_SELECTOR, "#tests-body tr")
    assert [r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows] == [
        "OK", "Wrong answer"]
    assert "expected 0.7, got 0.6666666666666666" in rows[1].text
    assert "Score2 / 5" in text(browser, "#metrics")
    shoot(browser, "playground-judging")


def test_an_interactor_pasted_in(browser: WebDriver, system: System) -> None:  # noqa: F811
    open_playground(browser, system.url + "/")
    Select(browser.find_element(By.ID, "language")).select_by_value("python")
    type_program(browser, "print(int(input()) + 1, flush=True)")
    add_tests(browser, [("41", "", "1")])
    Select(browser.find_element(By.ID, "checker")).select_by_value("interactor")
    Select(browser.find_element(By.ID, "judge-language")).select_by_value("python")
    source = browser.find_element(By.ID, "judge-source")
    source.send_keys("import sys\nn = int(open(sys.argv[1]).read())\nprint(n, flush=True)\n"
                     "got = int(input())\nprint('got', got, file=sys.stderr)\n"
                     "sys.exit(0 if got == n + 1 else 1)\n")
    browser.find_element(By.ID, "run").click()
    verdict(browser, "OK")
    row = browser.find_element(By.CSS_SELECTOR, "#tests-body tr")
    assert "got 42" in row.text
