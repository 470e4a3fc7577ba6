"""``python3 -m qaicmodel.guest``."""

import sys

from qaicmodel.guest import main

sys.exit(main())
