"""The node and budget pages, in a real headless Chromium, as people click through them.

1. An ML engineer opens Nodes from the nav, filters by status, opens a node (its server-drawn SVG
   metrics chart and its data sets), watches its status change live on the node's page and on the
   list when the node's agent sends heartbeats (nodes.js over the real WebSocket), looks at the
   zones, and finds another user's node answering the 404 page. pytest-django's ``live_server`` is
   WSGI only, so this test serves the real ASGI application (``config.asgi``: HTTP, /static/ and
   the WebSocket) with uvicorn, as ``manage.py runplatform`` does, in a thread sharing the test's
   database. Its writes (the heartbeats) go through that server, so they never race its reads.
2. A financial controller opens a budget with costs in two categories (two of them in one month):
   the utilisation bars carry the right values and Chart.js really draws the spending trend, its
   category bars stacked, with no console error (CSP violations and script errors land there).
   She sends it for approval with the budget page's "Request approval" button; a second person,
   an approver, approves it from the approval queue's form, and the budget shows approved with
   the history entries. The approver then activates it and closes it from its page (the closing
   asks first, through budgets.js: cancelled, nothing changes).
3. The controller generates a report from the reports page and opens its printable view.
"""

import datetime
import shutil
import socket
import threading
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Role
from accounts.roles import BUILTIN_ROLES
from accounts.tests.factories import PASSWORD, UserFactory
from budgets.choices import SEED_CATEGORIES
from budgets.models import ApprovalEvent, Budget, Category, Report
from budgets.tests.conftest import approver_at, make_budget
from budgets.tests.factories import CostEntryFactory, category
from nodes.choices import NodeStatus
from nodes.models import Node
from nodes.tests.factories import ClusterFactory, NodeDatasetFactory, NodeFactory, NodeMetricFactory, ZoneFactory
from tests.test_browser import (CHROMEDRIVER, CHROMIUM, WAIT_SECONDS, _severe_console_errors,  # noqa: F401
                                browser, page_wait)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)),
        reason=f"needs Debian's chromium and chromedriver at {CHROMIUM} and {CHROMEDRIVER}",
    ),
    # Imported with uvicorn's WebSocket support (and the ASGI app), not raised by Pollen's code.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.*",
                               "ignore::DeprecationWarning:uvicorn.*", "ignore::DeprecationWarning:typer.*"),
]
pytest.importorskip("selenium", reason="selenium comes with requirements-dev.txt")


# ---- set-up shared by the tests -------------------------------------------------------------------

@pytest.fixture
def seeded(transactional_db):
    """The built-in roles and seed 004's categories: a transactional test's flush removes the rows
    the data migrations wrote, so they are put back here."""
    for name, spec in BUILTIN_ROLES.items():
        Role.objects.update_or_create(name=name, defaults={"permissions": spec["permissions"],
                                                           "description": spec["description"], "is_builtin": True})
    for position, spec in enumerate(SEED_CATEGORIES, start=1):
        Category.objects.update_or_create(value=spec["value"], defaults={**spec, "position": position})


@pytest.fixture
def asgi_server(transactional_db):
    """``config.asgi.application`` served by uvicorn on a free loopback port, in a thread: HTTP
    (pages and /static/) and the WebSocket, on the test's database. Stopped after the browser."""
    uvicorn = pytest.importorskip("uvicorn")
    from channels.layers import channel_layers

    from config.asgi import application

    channel_layers.backends.pop("default", None)  # a layer of this server's own event loop
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(WAIT_SECONDS)
    sock.close()
    channel_layers.backends.pop("default", None)


class Pages:
    """The few moves every scenario makes, on one browser against one server."""

    def __init__(self, browser, base_url: str):
        self.browser, self.url = browser, base_url
        self.wait = page_wait(browser)

    def log_in(self, username: str, greeting: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        self.browser.get(f"{self.url}/login/")
        self.browser.find_element(By.NAME, "username").send_keys(username)
        self.browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        self.browser.find_element(By.CSS_SELECTOR, "form button[type=submit].primary").click()
        self.wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), f"Welcome, {greeting}"))

    def log_out(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        self.browser.find_element(By.CSS_SELECTOR, ".who form button[type=submit]").click()
        self.wait.until(EC.url_to_be(f"{self.url}/login/"))

    def nav(self, text: str, path: str):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC

        self.browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Main]").find_element(By.LINK_TEXT, text).click()
        self.wait.until(EC.url_to_be(f"{self.url}{path}"))
        current = self.browser.find_element(By.CSS_SELECTOR, "nav[aria-label=Main] a[aria-current=page]")
        assert current.text == text

    def click_and_load(self, element, path: str):
        from selenium.webdriver.support import expected_conditions as EC

        element.click()
        self.wait.until(EC.url_to_be(f"{self.url}{path}"))

    def messages(self) -> str:
        from selenium.webdriver.common.by import By

        return " ".join(m.text for m in self.browser.find_elements(By.CSS_SELECTOR, ".messages .msg"))


# ---- 1. nodes -----------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_an_engineer_filters_nodes_opens_one_and_watches_it_live(seeded, asgi_server, browser):  # noqa: F811
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select

    engineer = UserFactory(username="noor", first_name="Noor", roles=["ml_engineer"])
    zone = ZoneFactory(name="Europe West", code="eu-west-1")
    cluster = ClusterFactory(name="Paris racks", zone=zone)
    paris = NodeFactory(registered_by=engineer, name="edge-paris", zone=zone, cluster=cluster,
                        dataset="digits-part-0", latest_metrics={"cpu_percent": 47.0, "memory_percent": 55.0})
    lyon = NodeFactory(registered_by=engineer, name="edge-lyon", zone=zone, status=NodeStatus.OFFLINE,
                       last_seen=timezone.now() - datetime.timedelta(hours=2))
    foreign = NodeFactory(name="someone-elses", zone=zone)  # registered by another user
    now = timezone.now()
    for k in range(6):  # the last hour, one sample every ten minutes
        NodeMetricFactory(node=paris, timestamp=now - datetime.timedelta(minutes=10 * (5 - k)),
                          cpu_percent=20.0 + 5 * k, memory_percent=50.0 + k)
    NodeDatasetFactory(node=paris, name="digits-part-0", rows=600, features=64, classes=10,
                       description="A third of the digits")
    NodeDatasetFactory(node=paris, name="digits-holdout", rows=180, features=64, classes=10)
    # The node agent's credential: the heartbeat below is what it sends.
    _, agent_key = account_services.api_key_create(user=engineer, name="agent on edge-paris", scopes=["client:write"])
    pages = Pages(browser, asgi_server)

    # ---- the list, from the nav; a status filter ---------------------------------------------
    pages.log_in("noor", "Noor")
    pages.nav("Nodes", "/nodes/")

    def listed():
        rows = browser.find_elements(By.CSS_SELECTOR, "#nodes tbody tr[data-node-id]")
        return [r.find_element(By.CSS_SELECTOR, "td a").text for r in rows]

    assert sorted(listed()) == ["edge-lyon", "edge-paris"]  # not someone-elses
    status = Select(browser.find_element(By.NAME, "status"))
    status.select_by_visible_text("Offline")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    pages.wait.until(EC.url_contains("status=offline"))
    assert listed() == ["edge-lyon"]
    assert browser.find_element(By.CSS_SELECTOR, f'tr[data-node-id="{lyon.pk}"] td[data-col=status]').text == "offline"
    Select(browser.find_element(By.NAME, "status")).select_by_visible_text("Connected")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    pages.wait.until(EC.url_contains("status=connected"))
    assert listed() == ["edge-paris"]
    assert Select(browser.find_element(By.NAME, "status")).first_selected_option.text == "Connected"
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-node-id="{paris.pk}"]')
    assert [c.text for c in row.find_elements(By.CSS_SELECTOR, "td.num")] == ["47 %", "55 %"]
    assert "Europe West / Paris racks" in row.text

    # ---- a node's page: the SVG chart, the samples and the data sets -------------------------
    pages.click_and_load(row.find_element(By.LINK_TEXT, "edge-paris"), f"/nodes/{paris.pk}/")
    assert browser.title == "edge-paris · Pollen"
    assert browser.find_element(By.ID, "node-status").text == "connected"
    chart = browser.find_element(By.CSS_SELECTOR, ".node-chart svg.line-chart")
    assert "6 points" in chart.get_attribute("aria-label")
    for series in ("cpu", "memory"):
        line = chart.find_element(By.CSS_SELECTOR, f'g[data-series="{series}"] polyline.line')
        assert len(line.get_attribute("points").split()) == 6
        assert line.size["width"] > 100  # drawn across the plot, not collapsed
    # cpu rises 20 -> 45 %: its last point sits higher (a smaller y) than its first
    cpu = [tuple(map(float, p.split(","))) for p in
           chart.find_element(By.CSS_SELECTOR, 'g[data-series="cpu"] polyline').get_attribute("points").split()]
    assert cpu[-1][0] > cpu[0][0] and cpu[-1][1] < cpu[0][1]
    assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".node-chart .legend li")] == ["CPU %", "Memory %"]
    browser.find_element(By.CSS_SELECTOR, "details summary").click()  # "Latest 6 samples"
    samples = browser.find_elements(By.CSS_SELECTOR, "#metric-samples tbody tr")
    assert len(samples) == 6 and samples[0].find_elements(By.TAG_NAME, "td")[1].text == "45.0"
    datasets = {r.find_element(By.TAG_NAME, "td").text: r.text for r in
                browser.find_elements(By.CSS_SELECTOR, "#datasets tbody tr")}
    assert set(datasets) == {"digits-part-0 current", "digits-holdout"}
    assert "600 64 10 A third of the digits" in datasets["digits-part-0 current"]

    # ---- live: the agent's heartbeat reports training, the page follows without a reload ------
    pages.wait.until(EC.text_to_be_present_in_element((By.ID, "node-events"), "Listening for status changes"))
    response = httpx.post(f"{asgi_server}/api/v1/fl/clients/{paris.pk}/heartbeat", headers={"X-API-Key": agent_key},
                          json={"status": "training", "metrics": {"cpu_percent": 91.0, "memory_percent": 70.0}},
                          timeout=WAIT_SECONDS)
    assert response.status_code == 200, response.text
    pages.wait.until(EC.text_to_be_present_in_element((By.ID, "node-status"), "training"))
    assert "node-status training" in browser.find_element(By.ID, "node-status").get_attribute("class")
    assert "training (was connected)" in browser.find_element(By.CSS_SELECTOR, "#node-events li").text
    assert browser.find_element(By.CSS_SELECTOR, "#node-last-seen time").text == "just now"
    assert _severe_console_errors(browser) == []

    # ---- the list follows too: the next heartbeat (idle) changes its row in place -------------
    pages.click_and_load(browser.find_element(By.LINK_TEXT, "All nodes"), "/nodes/")
    status_cell = (By.CSS_SELECTOR, f'tr[data-node-id="{paris.pk}"] td[data-col=status]')
    assert browser.find_element(*status_cell).text == "training"
    browser.execute_script("document.getElementById('nodes').dataset.sameDocument = 'yes'")
    # Sent without waiting for the socket: the page subscribes "since" it was rendered, so an event
    # stored in between is replayed.
    response = httpx.post(f"{asgi_server}/api/v1/fl/clients/{paris.pk}/heartbeat", headers={"X-API-Key": agent_key},
                          json={"status": "idle"}, timeout=WAIT_SECONDS)
    assert response.status_code == 200, response.text
    pages.wait.until(EC.text_to_be_present_in_element(status_cell, "idle"))
    assert browser.find_element(By.ID, "nodes").get_attribute("data-same-document") == "yes"  # no reload
    assert browser.find_element(By.CSS_SELECTOR, f'tr[data-node-id="{paris.pk}"] td[data-col=last_seen]').text \
        == "just now"
    assert _severe_console_errors(browser) == []

    # ---- the zones overview counts what the engineer may see ---------------------------------
    pages.click_and_load(browser.find_element(By.LINK_TEXT, "Zones and clusters"), "/nodes/zones/")
    section = browser.find_element(By.ID, "zone-eu-west-1")
    assert section.find_element(By.CSS_SELECTOR, ".heading > span").text == "2 nodes 1 idle 1 offline"
    cluster_row = section.find_element(By.XPATH, ".//tr[td/a[text()='Paris racks']]")
    assert cluster_row.find_elements(By.TAG_NAME, "td")[1].text == "1 node 1 idle"

    # ---- another user's node answers the 404 page -------------------------------------------
    browser.get(f"{asgi_server}/nodes/{foreign.pk}/")
    pages.wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Not found"))
    assert browser.title == "Not found · Pollen"
    assert "someone-elses" not in browser.page_source
    assert _severe_console_errors(browser) == []
    assert Node.objects.get(pk=paris.pk).status == NodeStatus.IDLE


# ---- 2. budgets and approval ----------------------------------------------------------------------

def _budget_with_costs(controller) -> Budget:
    """1,000.00 in planning, 600.00 for Infrastructure and 400.00 for Personnel. Spent: 300.00 on
    Infrastructure and 100.00 on Personnel in January (two categories in one month, whose bars
    stack), 50.00 more on Personnel in February."""
    budget = make_budget(controller, name="Q1 2025 Infrastructure", total="1000.00",
                         lines={"infrastructure": "600.00", "personnel": "400.00"})
    CostEntryFactory(budget=budget, category=category("infrastructure"), amount=Decimal("300.00"),
                     incurred_on=datetime.date(2025, 1, 10), description="GPU hours")
    CostEntryFactory(budget=budget, category=category("personnel"), amount=Decimal("100.00"),
                     incurred_on=datetime.date(2025, 1, 20), description="On-call")
    CostEntryFactory(budget=budget, category=category("personnel"), amount=Decimal("50.00"),
                     incurred_on=datetime.date(2025, 2, 10), description="On-call")
    return budget


# Chart.js's own view of the canvas: the chart, its labels and datasets, and how many pixels it painted.
CHART_STATE = """
const canvas = document.getElementById("spending-trend");
const chart = window.Chart && Chart.getChart(canvas);
if (!chart) { return null; }
const ctx = canvas.getContext("2d");
const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) { painted++; } }
const january = {}, lines = {};
chart.data.datasets.forEach((d, i) => {
  if (d.type === "bar" && d.data[0]) {
    const bar = chart.getDatasetMeta(i).data[0];
    january[d.label] = {top: bar.y, base: bar.base};
  }
  if (d.type === "line") {  // each point against where its own value lies on the axis
    lines[d.label] = chart.getDatasetMeta(i).data.map((p, j) => p.y - chart.scales.y.getPixelForValue(d.data[j]));
  }
});
return {labels: chart.data.labels, width: canvas.width, height: canvas.height, painted: painted,
        datasets: chart.data.datasets.map(d => ({label: d.label, type: d.type, data: d.data})),
        january: january, lines: lines, zero_px: chart.scales.y.getPixelForValue(0),
        january_total_px: chart.scales.y.getPixelForValue(400)};
"""


@pytest.mark.django_db(transaction=True)
def test_a_controller_reads_a_budget_and_an_approver_approves_it(seeded, live_server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    controller = UserFactory(username="carla", first_name="Carla", roles=["financial_controller"])
    approver = approver_at("budget_analyst", username="ben", first_name="Ben")
    budget = _budget_with_costs(controller)
    pages = Pages(browser, live_server.url)

    # ---- the list, from the nav --------------------------------------------------------------
    pages.log_in("carla", "Carla")
    pages.nav("Budgets", "/budgets/")
    row = browser.find_element(By.CSS_SELECTOR, f'#budgets tr[data-budget="{budget.pk}"]')
    assert "Planning" in row.text
    assert row.find_element(By.CSS_SELECTOR, "meter.utilisation").get_attribute("value") == "45"

    # ---- the budget's page: bars per category, the drawn chart -------------------------------
    pages.click_and_load(row.find_element(By.LINK_TEXT, budget.name), f"/budgets/{budget.pk}/")
    assert browser.find_element(By.ID, "budget-status").text == "Planning"
    assert browser.find_element(By.ID, "figure-spent").text == "450.00"
    assert browser.find_element(By.ID, "figure-available").text == "550.00"
    overall = browser.find_element(By.CSS_SELECTOR, 'meter[aria-label="Budget utilisation"]')
    assert overall.get_attribute("value") == "45"
    bars = {}
    for tr in browser.find_elements(By.CSS_SELECTOR, "#categories tbody tr[data-category]"):
        meter = tr.find_element(By.CSS_SELECTOR, "meter.utilisation")
        assert meter.size["width"] > 0 and meter.size["height"] > 0  # a visible bar
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        label = tr.find_element(By.CSS_SELECTOR, "td.progress-cell span.num").text
        bars[tr.get_attribute("data-category")] = (cells[1:4], meter.get_attribute("value"),
                                                   meter.get_attribute("aria-label"), label)
    assert bars == {
        "infrastructure": (["600.00", "300.00", "0.00"], "50", "Infrastructure", "50.00 %"),
        "personnel": (["400.00", "150.00", "0.00"], "37.5", "Personnel", "37.50 %"),
    }
    # budgets.js coloured the swatches from their data-color (no inline style in the markup)
    swatch = browser.find_element(By.CSS_SELECTOR, '#categories tr[data-category="infrastructure"] .swatch')
    assert browser.execute_script("return arguments[0].style.backgroundColor", swatch) != ""

    state = pages.wait.until(lambda driver: driver.execute_script(CHART_STATE))
    assert state["labels"] == ["2025-01", "2025-02"]
    assert {d["label"]: (d["type"], d["data"]) for d in state["datasets"]} == {
        "Infrastructure": ("bar", [300, 0]), "Personnel": ("bar", [100, 50]),
        "Cumulative spent": ("line", [400, 450]), "Total budget": ("line", [1000, 1000])}
    # January's two category bars stack (one on top of the other, up to 400), not overlap from zero
    bars = state["january"]
    assert sorted(bars) == ["Infrastructure", "Personnel"], bars
    (low, high) = sorted(bars.values(), key=lambda b: -b["base"])  # pixel y grows downwards
    assert low["base"] == pytest.approx(state["zero_px"], abs=1), bars
    assert high["base"] == pytest.approx(low["top"], abs=1), bars
    assert high["top"] == pytest.approx(state["january_total_px"], abs=1), bars
    # while each line is drawn at its own values (not stacked on the other)
    assert sorted(state["lines"]) == ["Cumulative spent", "Total budget"]
    assert all(abs(offset) < 1 for offsets in state["lines"].values() for offset in offsets), state["lines"]
    assert state["width"] > 0 and state["height"] > 0 and state["painted"] > 1000, state
    assert browser.find_elements(By.ID, "decision") == []  # a planning budget awaits no decision
    assert _severe_console_errors(browser) == []

    # ---- Carla asks for approval from the budget's page ----------------------------------------
    lifecycle = browser.find_element(By.ID, "lifecycle")
    assert [b.text for b in lifecycle.find_elements(By.CSS_SELECTOR, "button[name=status]")] == ["Request approval"]
    lifecycle.find_element(By.NAME, "reason").send_keys("Q1 plan agreed with the team")
    lifecycle.find_element(By.CSS_SELECTOR, "button[name=status][value=submitted]").click()
    pages.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "approval requested"))
    assert browser.current_url == f"{live_server.url}/budgets/{budget.pk}/"
    assert pages.messages() == "Q1 2025 Infrastructure: approval requested."
    assert browser.find_element(By.ID, "budget-status").text == "Submitted for approval"
    assert browser.find_elements(By.ID, "lifecycle") == []  # now it waits for an approver
    assert browser.find_elements(By.ID, "decision") == []  # Carla is no approver
    requested = browser.find_element(By.CSS_SELECTOR, "#approval-history li").text
    assert "Approval requested by Carla" in requested and "via Dashboard page" in requested
    assert _severe_console_errors(browser) == []
    pages.nav("Approvals", "/budgets/approvals/")
    row = browser.find_element(By.CSS_SELECTOR, f'#approval-queue tr[data-budget="{budget.pk}"]')
    assert "Your own request" in row.text and row.find_elements(By.TAG_NAME, "form") == []
    assert "not a budget approver" in browser.find_element(By.CSS_SELECTOR, "main p.muted").text
    pages.log_out()

    # ---- Ben, an approver, approves it from the queue ----------------------------------------
    pages.log_in("ben", "Ben")
    pages.nav("Approvals", "/budgets/approvals/")
    assert "You approve as Budget Analyst up to 100000.00" in browser.find_element(By.CSS_SELECTOR, "main p.muted").text
    row = browser.find_element(By.CSS_SELECTOR, f'#approval-queue tr[data-budget="{budget.pk}"]')
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "1000.00" and cells[2] == "Budget Analyst" and cells[3].startswith("carla")
    row.find_element(By.ID, f"reason-{budget.pk}").send_keys("Within the Q1 plan")
    row.find_element(By.CSS_SELECTOR, "button[name=decision][value=approve]").click()
    pages.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "approved"))
    assert browser.current_url == f"{live_server.url}/budgets/approvals/"
    assert pages.messages() == "Q1 2025 Infrastructure: approved."
    assert browser.find_element(By.CSS_SELECTOR, "#approval-queue tbody").text == "Nothing waits for approval."

    # ---- the budget shows approved, with the history ------------------------------------------
    pages.nav("Budgets", "/budgets/")
    pages.click_and_load(browser.find_element(By.LINK_TEXT, budget.name), f"/budgets/{budget.pk}/")
    assert browser.find_element(By.ID, "budget-status").text == "Approved"
    assert "approved" in browser.find_element(By.ID, "budget-status").get_attribute("class")
    history = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#approval-history li")]
    assert len(history) == 2, history
    assert "Approval requested by Carla" in history[0] and "via Dashboard page" in history[0]
    assert "“Q1 plan agreed with the team”" in history[0]
    assert "Approved by Ben (Budget Analyst, limit 100000.00) · 1000.00 · via" in history[1]
    assert history[1].endswith("“Within the Q1 plan”")
    assert browser.find_element(By.ID, "forecast").is_displayed()  # shown once approved
    assert pages.wait.until(lambda driver: driver.execute_script(CHART_STATE))["painted"] > 1000
    assert _severe_console_errors(browser) == []

    budget.refresh_from_db()
    assert budget.status == "approved" and budget.approved_by == approver.user
    event = ApprovalEvent.objects.get(budget=budget, action="approved")
    assert event.channel == "page" and event.actor == approver.user and event.reason == "Within the Q1 plan"
    requested = ApprovalEvent.objects.get(budget=budget, action="requested")
    assert requested.channel == "page" and requested.actor == controller
    assert requested.reason == "Q1 plan agreed with the team"

    # ---- Ben activates it, then closes it (the page asks first) -------------------------------
    def moves():
        return [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#lifecycle button[name=status]")]

    assert moves() == ["Activate", "Close"]
    browser.find_element(By.CSS_SELECTOR, "#lifecycle button[value=active]").click()
    pages.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "active"))
    assert pages.messages() == "Q1 2025 Infrastructure: active."
    assert browser.find_element(By.ID, "budget-status").text == "Active"
    assert moves() == ["Monitor", "Close"]
    close = browser.find_element(By.CSS_SELECTOR, "#lifecycle button[value=closed]")
    browser.execute_script("document.body.dataset.sameDocument = 'yes'")
    close.click()
    alert = pages.wait.until(EC.alert_is_present())
    assert alert.text.startswith("Close this budget?")
    alert.dismiss()  # nothing is posted: the same document, still active
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-same-document") == "yes"
    assert browser.find_element(By.ID, "budget-status").text == "Active"
    assert Budget.objects.get(pk=budget.pk).status == "active"
    close.click()
    pages.wait.until(EC.alert_is_present()).accept()
    pages.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "closed"))
    assert pages.messages() == "Q1 2025 Infrastructure: closed."
    assert browser.find_element(By.ID, "budget-status").text == "Closed"
    assert browser.find_elements(By.ID, "lifecycle") == []
    assert _severe_console_errors(browser) == []
    budget.refresh_from_db()
    assert budget.status == "closed" and budget.closed_at is not None


# ---- 3. reports -----------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_controller_generates_a_report_and_opens_its_printable_view(seeded, live_server, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select

    controller = UserFactory(username="carla", first_name="Carla", roles=["financial_controller"])
    budget = _budget_with_costs(controller)
    pages = Pages(browser, live_server.url)

    pages.log_in("carla", "Carla")
    pages.nav("Reports", "/budgets/reports/")
    assert browser.find_element(By.CSS_SELECTOR, "#reports tbody").text == "No reports yet."
    form = browser.find_element(By.CSS_SELECTOR, "form.inline-form")
    Select(form.find_element(By.NAME, "kind")).select_by_visible_text("Summary, monthly trends and forecast")
    Select(form.find_element(By.NAME, "format")).select_by_visible_text("Printable HTML")
    Select(form.find_element(By.NAME, "budget")).select_by_visible_text(budget.name)
    form.find_element(By.NAME, "title").send_keys("Q1 review")
    form.find_element(By.CSS_SELECTOR, "button[type=submit].primary").click()
    pages.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "Q1 review"))
    assert browser.current_url == f"{live_server.url}/budgets/reports/"
    assert pages.messages() == "“Q1 review” is being generated."

    report = Report.objects.get()
    assert report.status == "completed", report.error  # Celery is eager: built once the request committed
    assert report.kind == "full" and report.format == "html" and report.parameters == {"budget": str(budget.pk)}
    row = browser.find_element(By.CSS_SELECTOR, f'#reports tr[data-report="{report.pk}"]')
    assert "Q1 review" in row.text and "completed" in row.text and "carla" in row.text

    # ---- the printable view ----------------------------------------------------------------
    pages.click_and_load(row.find_element(By.LINK_TEXT, "printable page"), f"/budgets/reports/{report.pk}/print/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Q1 review"
    sections = {s.find_element(By.TAG_NAME, "h2").text: s for s in
                browser.find_elements(By.CSS_SELECTOR, "section.report-section")}
    assert list(sections) == ["Summary", "Monthly trends", "Forecast"]
    summary = [td.text for td in sections["Summary"].find_elements(By.CSS_SELECTOR, "tbody tr td")]
    assert summary[0] == budget.name and summary[3:9] == ["1000.00", "1000.00", "450.00", "0.00", "550.00", "45.00"]
    months = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
              for tr in sections["Monthly trends"].find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert months == [["2025-01", "400.00", "0.00", "400.00"], ["2025-02", "50.00", "0.00", "450.00"]]
    assert _severe_console_errors(browser) == []

    # The Print button is wired by budgets.js (no inline handler): it calls window.print().
    browser.execute_script("window.print = function () { window.__printed = (window.__printed || 0) + 1; };")
    browser.find_element(By.CSS_SELECTOR, "button[data-print]").click()
    assert browser.execute_script("return window.__printed") == 1
    # Printed, the page drops the navigation and the button.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not browser.find_element(By.CSS_SELECTOR, "header.topbar").is_displayed()
        assert not browser.find_element(By.CSS_SELECTOR, "button[data-print]").is_displayed()
        assert browser.find_element(By.TAG_NAME, "h1").is_displayed()
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
