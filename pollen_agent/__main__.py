import sys

from pollen_agent.cli import main

sys.exit(main())
