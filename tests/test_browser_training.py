"""Starting a training run from the dashboard, in a real headless Chromium against a live server.

The live server speaks WSGI only (no WebSocket) and Celery is eager in tests, so the run started
by the form trains inside that request: the execution page then shows it completed, with its
rounds and the charts drawn by static/js/chart.js.
"""

import shutil

import pytest

from accounts.models import Role
from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import PASSWORD, UserFactory
from projects.tests.factories import ProjectFactory
from tests.test_browser import (CHROMEDRIVER, CHROMIUM, WAIT_SECONDS, _severe_console_errors,  # noqa: F401
                                browser, page_wait)
from training.choices import ExecutionStatus
from training.models import Execution

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason=f"needs Debian's chromium and chromedriver at {CHROMIUM} and {CHROMEDRIVER}",
    ),
]


@pytest.mark.django_db(transaction=True)
def test_start_a_tiny_run_and_read_its_page(live_server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select

    # A transactional test empties the tables after itself: the role may be gone if another ran first.
    Role.objects.get_or_create(name="user", defaults={**BUILTIN_ROLES["user"], "is_builtin": True})
    user = UserFactory(username="iris", first_name="Iris", roles=["user"])
    project = ProjectFactory(owner=user, name="Iris across clinics", configuration={})
    wait = page_wait(browser)

    # ---- log in --------------------------------------------------------------------------------
    browser.get(f"{live_server.url}/login/")
    browser.find_element(By.NAME, "username").send_keys("iris")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Welcome, Iris"))

    # ---- from the training list to the start form ------------------------------------------------
    browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]").find_element(By.LINK_TEXT, "Training").click()
    wait.until(EC.url_to_be(f"{live_server.url}/training/"))
    assert "No training runs match." in browser.find_element(By.ID, "executions").text
    wait.until(EC.element_to_be_clickable((By.LINK_TEXT, "Start training"))).click()
    wait.until(EC.url_to_be(f"{live_server.url}/training/new/"))

    # the chosen algorithm's parameters are marked by execution.js
    Select(browser.find_element(By.NAME, "algorithm")).select_by_value("fedprox")
    browser.find_element(By.CSS_SELECTOR, "#algorithm-params summary").click()
    marked = browser.find_elements(By.CSS_SELECTOR, "#algorithm-params .current")
    assert {m.get_attribute("data-algorithm") for m in marked} == {"fedprox"}
    Select(browser.find_element(By.NAME, "algorithm")).select_by_value("fedavg")

    # ---- a tiny configuration ------------------------------------------------------------------
    Select(browser.find_element(By.NAME, "project")).select_by_visible_text("Iris across clinics")
    browser.find_element(By.NAME, "name").send_keys("Iris in the browser")
    Select(browser.find_element(By.NAME, "model_type")).select_by_value("logistic")
    Select(browser.find_element(By.NAME, "dataset")).select_by_value("iris")
    for name, value in (("rounds", "2"), ("clients", "3"), ("seed", "5")):
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    browser.find_element(By.CSS_SELECTOR, "#start-form button[type=submit].primary").click()

    # ---- the run trained inside the request: its page shows it completed -----------------------
    wait.until(EC.url_matches(rf"^{live_server.url}/training/[0-9a-f-]{{36}}/$"))
    execution = Execution.objects.get(project=project)
    assert browser.current_url == f"{live_server.url}/training/{execution.pk}/"
    assert execution.status == ExecutionStatus.COMPLETED, execution.error_message
    assert execution.name == "Iris in the browser" and execution.dataset == "iris" and execution.total_rounds == 2
    assert browser.find_element(By.ID, "execution-status").text == "completed"
    assert browser.find_element(By.ID, "execution-progress").get_attribute("value") == "2"
    assert browser.find_element(By.ID, "progress-text").text == "Round 2 of 2"

    rows = browser.find_elements(By.CSS_SELECTOR, "#rounds tbody tr[data-round]")
    assert [r.get_attribute("data-round") for r in rows] == ["1", "2"]
    for row in rows:
        assert row.find_element(By.CSS_SELECTOR, "td[data-col=status]").text == "completed"
        accuracy = float(row.find_element(By.CSS_SELECTOR, "td[data-col=accuracy]").text)
        assert 0.0 <= accuracy <= 1.0
        assert row.find_element(By.CSS_SELECTOR, "td[data-col=checkpoint] a").get_attribute("href").endswith(
            f"/rounds/{row.get_attribute('data-round')}/checkpoint")

    # chart.js drew both charts: one line of two points for accuracy, two lines for loss
    accuracy_line = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#accuracy-chart svg path.line")))
    assert accuracy_line.get_attribute("d").count("L") == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#accuracy-chart svg circle.dot")) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#loss-chart svg path.line")) == 2
    assert browser.find_element(By.CSS_SELECTOR, "#loss-chart .legend").text.split("\n") == \
        ["Evaluation loss", "Training loss"]
    assert "Execution completed" in browser.find_element(By.ID, "execution-log").text
    assert browser.find_elements(By.ID, "execution-actions") == []
    assert _severe_console_errors(browser) == []

    # ---- the list and the project page show the run --------------------------------------------
    browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]").find_element(By.LINK_TEXT, "Training").click()
    wait.until(EC.url_to_be(f"{live_server.url}/training/"))
    row = browser.find_element(By.CSS_SELECTOR, "#executions tbody tr")
    assert "Iris in the browser" in row.text and "completed" in row.text and "2/2" in row.text
    row.find_element(By.LINK_TEXT, "Iris across clinics").click()
    wait.until(EC.url_to_be(f"{live_server.url}/projects/{project.pk}/"))
    assert "Iris in the browser" in browser.find_element(By.ID, "recent-executions").text
    assert _severe_console_errors(browser) == []
