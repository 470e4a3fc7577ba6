"""``python -m qaicmodel`` behaves exactly like the ``qaicmodel`` console script."""

import sys

from qaicmodel.cli import main

if __name__ == "__main__":
    sys.exit(main())
