from .base import *  # noqa: F401,F403
from .security import *  # noqa: F401,F403
from .logging import *  # noqa: F401,F403
from .channels import *  # noqa: F401,F403
from .celery import *  # noqa: F401,F403
from .devices import *  # noqa: F401,F403
from .budgets import *  # noqa: F401,F403
