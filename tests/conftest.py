import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Fixtures read item.rep_call to know whether the test body failed (e.g. to keep a screenshot).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
