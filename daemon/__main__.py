"""`python -m daemon`: the same as `riffd serve`."""

import sys

from daemon.entry import main

sys.exit(main())
