"""Budgets and costs (seed 004)."""

from decimal import Decimal

from config.env import env  # noqa: F401

# What one CPU-second of a training execution costs, in the budgets' currency. A finished execution
# books cpu_seconds x this rate (category Infrastructure) to its project's active budget. Read as a
# string so the rate is an exact Decimal; 0 turns compute booking off.
BUDGET_COMPUTE_RATE_PER_CPU_SECOND = Decimal(env.str("BUDGET_COMPUTE_RATE_PER_CPU_SECOND", default="0.0001"))
BUDGET_COMPUTE_CATEGORY = env.str("BUDGET_COMPUTE_CATEGORY", default="infrastructure")
BUDGET_COMPUTE_SERVICE = env.str("BUDGET_COMPUTE_SERVICE", default="training")
# Shown next to amounts on pages, reports and e-mails; amounts themselves carry no currency.
BUDGET_CURRENCY = env.str("BUDGET_CURRENCY", default="USD")
# Seed 004's notification triggers, used when a rule names none.
BUDGET_DEFAULT_THRESHOLDS = [75, 90, 100]
# Who receives the scheduled report by e-mail; empty: the recipients of every active notification rule.
BUDGET_REPORT_RECIPIENTS = env.list("BUDGET_REPORT_RECIPIENTS", default=[])

# Budgets are the first part of Pollen that sends e-mail. EMAIL_URL (django-environ syntax, e.g.
# smtp+tls://user:password@mail.example.com:587) picks the backend; the embedded default prints
# messages to the console.
globals().update({key: value for key, value in env.email_url("EMAIL_URL", default="consolemail://").items()
                  if value not in (None, "")})
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="pollen@localhost")
