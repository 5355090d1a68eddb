"""A person's first session, in a real headless Chromium against a live server.

Log in, create a project, upload a broken archive (and read the error next to the file field),
then upload a real Flower app and find it in the project's uploads table.
"""

import shutil
from pathlib import Path

import pytest

from accounts.models import Role
from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import PASSWORD, UserFactory
from projects.models import Project, ProjectUpload
from projects.tests.archives import flower_files, make_zip

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 10

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason=f"needs Debian's chromium and chromedriver at {CHROMIUM} and {CHROMEDRIVER}",
    ),
]
pytest.importorskip("selenium", reason="selenium comes with requirements-dev.txt")

def page_wait(browser):
    """A wait that rides out a page being replaced while it looks: Chromium may then answer a
    lookup with "Node with given id does not belong to the document", a plain WebDriverException
    that Selenium's expected conditions do not catch. The condition is simply asked again."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=(WebDriverException,))


# The upload tests' Flower app (Flower's own layout), without its README: five files.
APP_FILES = {name: text for name, text in flower_files("", {"README.md": None}).items()}


def write_flower_app(path: Path) -> Path:
    path.write_bytes(make_zip({f"mypkg-app/{name}": text for name, text in APP_FILES.items()}))
    return path


@pytest.fixture
def browser(tmp_path, request, monkeypatch):
    # Everything the driver needs is given explicitly: Selenium Manager must download nothing.
    monkeypatch.setenv("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1000", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS * 2)
    yield driver
    report = getattr(request.node, "rep_call", None)  # set by tests/conftest.py
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        try:
            driver.save_screenshot(str(shot))
            (tmp_path / "failure.html").write_text(driver.page_source)
            print(f"\nScreenshot of the failing page: {shot} (URL {driver.current_url})")
        except Exception as exc:  # the screenshot must never hide the real failure
            print(f"\nCould not save a screenshot: {exc!r}")
    driver.quit()


def _severe_console_errors(driver) -> list[str]:
    """SEVERE console entries our pages cause: script errors and static files that fail to load.

    Left out: failed loads outside /static/ (the browser's own favicon probe; pages are checked by
    what they show), and the WebSocket to /api/v1/ws/ that the WSGI live server cannot answer
    (live-events.js expects that and retries).
    """
    problems = []
    for entry in driver.get_log("browser"):
        message = entry.get("message", "")
        if entry.get("level") != "SEVERE" or "websocket" in message.lower() or "/api/v1/ws/" in message:
            continue
        if entry.get("source") == "network" and "/static/" not in message:
            continue
        problems.append(message)
    return problems


@pytest.mark.django_db(transaction=True)
def test_login_create_project_and_upload_a_flower_app(live_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    # A transactional test empties the tables after itself: the role may be gone if another ran first.
    Role.objects.get_or_create(name="user", defaults={**BUILTIN_ROLES["user"], "is_builtin": True})
    user = UserFactory(username="flora", first_name="Flora", roles=["user"])
    wait = page_wait(browser)

    def click_link(text: str):
        wait.until(EC.element_to_be_clickable((By.LINK_TEXT, text))).click()

    # ---- log in ------------------------------------------------------------------------------
    browser.get(f"{live_server.url}/login/")
    assert browser.title.startswith("Log in")
    stylesheet_loaded = browser.execute_script(
        "return Array.from(document.styleSheets).some(s => (s.href || '').includes('/static/css/pollen.css')"
        " && s.cssRules.length > 0)"
    )
    assert stylesheet_loaded, "pollen.css did not load"
    browser.find_element(By.NAME, "username").send_keys("flora")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Welcome, Flora"))
    assert browser.current_url == f"{live_server.url}/"
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=project-count]").text == "0"

    # ---- create a project --------------------------------------------------------------------
    browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]").find_element(By.LINK_TEXT, "Projects").click()
    wait.until(EC.url_to_be(f"{live_server.url}/projects/"))
    assert "No projects match." in browser.find_element(By.TAG_NAME, "table").text
    click_link("New project")
    wait.until(EC.url_to_be(f"{live_server.url}/projects/new/"))
    browser.find_element(By.NAME, "name").send_keys("Digits across hospitals")
    browser.find_element(By.NAME, "description").send_keys("Federated CNN on the digits data set.")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Digits across hospitals"))

    project = Project.objects.get(owner=user)
    assert project.name == "Digits across hospitals"
    assert project.description == "Federated CNN on the digits data set."
    assert browser.current_url == f"{live_server.url}/projects/{project.pk}/"
    assert "created" in browser.find_element(By.CSS_SELECTOR, ".messages").text
    assert "No Flower app uploaded yet." in browser.find_element(By.ID, "uploads").text
    assert _severe_console_errors(browser) == []

    # ---- a file that only claims to be a ZIP is refused, the error shown next to the field -----
    click_link("Upload Flower app")
    wait.until(EC.url_to_be(f"{live_server.url}/projects/{project.pk}/upload/"))
    fake = tmp_path / "not-really.zip"
    fake.write_bytes(b"this is plain text, not a ZIP archive\n" * 10)
    browser.find_element(By.NAME, "file").send_keys(str(fake))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    error = wait.until(EC.visibility_of_element_located((By.ID, "id_file-error")))
    assert error.text == "The file is not a ZIP archive"
    field = error.find_element(By.XPATH, "./ancestor::div[contains(@class, 'field')]")
    assert "has-error" in field.get_attribute("class")
    assert field.find_element(By.NAME, "file")  # the message sits with the file input it is about
    assert not ProjectUpload.objects.exists()

    # ---- a real Flower app is accepted and listed --------------------------------------------
    app_zip = write_flower_app(tmp_path / "mypkg-app.zip")
    browser.find_element(By.NAME, "file").send_keys(str(app_zip))
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
    wait.until(EC.url_to_be(f"{live_server.url}/projects/{project.pk}/"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#uploads tbody tr")
    assert len(rows) == 1
    cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
    assert cells[0].startswith("mypkg-app.zip")
    assert cells[1].startswith("mypkg 1.0.0")
    assert cells[2] == "5 files"
    assert cells[4] == "valid"
    assert "Uploaded mypkg-app.zip: 5 files, valid." in browser.find_element(By.CSS_SELECTOR, ".messages").text

    upload = ProjectUpload.objects.get(project=project)
    assert upload.uploaded_by == user
    assert upload.original_name == "mypkg-app.zip"
    assert upload.validation_status == "valid"
    assert upload.app_root == "mypkg-app"
    assert upload.files == sorted(APP_FILES)
    assert upload.components == {"serverapp": "mypkg.server_app:app", "clientapp": "mypkg.client_app:app"}
    assert upload.size == app_zip.stat().st_size
    assert upload.archive.storage.exists(upload.archive.name)
    assert _severe_console_errors(browser) == []
